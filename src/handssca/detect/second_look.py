"""Pictures the detector looks at again when it finds no hand in the picture itself: the same pixels with
the contrast stretched, then brightened. Dim, flat pictures (a dark skin tone in a dim room) lose the edges
the palm detector needs; measured on the package's photo-like synthetic renders (``docs/fitting.md``), 20 of
the 86 hands missed in 400 are found on one of these (314 -> 334), and none of 600 hand-free pictures gives a
hand."""

from __future__ import annotations

import numpy as np

#: The luminance percentiles mapped to 0 and 255 by :func:`contrast_stretch`.
STRETCH_PERCENTILES = (1.0, 99.0)
#: The exponent of :func:`brighten` (< 1 lifts the shadows).
GAMMA = 0.6


def luminance_range(image: np.ndarray) -> tuple[float, float]:
    """The :data:`STRETCH_PERCENTILES` of an (H, W, 3) uint8 picture's luminance (mean of R, G, B), 0..255."""
    lum = image.astype(np.float32).mean(axis=2)
    lo, hi = np.percentile(lum, STRETCH_PERCENTILES)
    return float(lo), float(hi)


def contrast_stretch(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the same with the luminance's 1st..99th percentiles mapped to 0..255 (clipped)."""
    lo, hi = luminance_range(image)
    out = (image.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def brighten(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> 255 (x / 255) ** :data:`GAMMA`: the shadows lifted, black and white kept."""
    table = np.round(255.0 * (np.arange(256) / 255.0) ** GAMMA).astype(np.uint8)
    return table[image]


def second_looks(image: np.ndarray) -> list[np.ndarray]:
    """The pictures to look at when ``image`` (H, W, 3 uint8) shows no hand, in order; none for a flat
    picture (its luminance percentiles within one level: nothing to stretch, no hand to find)."""
    lo, hi = luminance_range(image)
    if hi - lo < 1.0:
        return []
    return [contrast_stretch(image), brighten(image)]
