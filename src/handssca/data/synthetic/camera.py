"""Camera effects applied to a rendered view: blur (out of focus or motion), sensor noise, JPEG."""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

NOISE_BANK = 512  # side of the bank of unit Gaussian camera noise (views larger than this tile it)


@dataclass
class CameraEffects:
    """What a camera does to a picture: ``blur`` (box blur radius, px; 0 = none), ``motion`` (5x5 motion
    kernel direction in radians, or None), ``noise`` (Gaussian sigma on [0, 1] values), the noise bank's
    window (``offset``, ``flip``) and ``jpeg`` quality (None = no compression)."""

    blur: float = 0.0
    motion: float | None = None
    noise: float = 0.0
    offset: tuple[int, int] = (0, 0)
    flip: int = 0
    jpeg: int | None = None


def sample_effects(rng: np.random.Generator) -> CameraEffects:
    """Random camera effects: blur (30%) or motion blur (10%), noise (80%, sigma up to 0.04), JPEG (50%)."""
    e = CameraEffects()
    r = rng.random()
    if r < 0.3:
        e.blur = float(rng.uniform(0.4, 1.3))
    elif r < 0.4:
        e.motion = float(rng.uniform(0, np.pi))
    if rng.random() < 0.8:
        e.noise = float(rng.uniform(0.003, 0.04))
    e.offset = (int(rng.integers(NOISE_BANK)), int(rng.integers(NOISE_BANK)))
    e.flip = int(rng.integers(8))
    if rng.random() < 0.5:
        e.jpeg = int(rng.integers(30, 96))
    return e


@functools.lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """(NOISE_BANK, NOISE_BANK, 3) float32 unit Gaussian noise, the same in every process."""
    return np.random.default_rng(20261201).standard_normal((NOISE_BANK, NOISE_BANK, 3), dtype=np.float32)


def _motion_kernel(angle: float) -> ImageFilter.Kernel:
    k = np.zeros((5, 5))
    for t in np.linspace(-2, 2, 9):
        k[int(round(2 + t * math.sin(angle))), int(round(2 + t * math.cos(angle)))] += 1
    return ImageFilter.Kernel((5, 5), tuple(k.ravel() / k.sum()), 1)


def apply_effects(image: np.ndarray, e: CameraEffects) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> the same through the camera effects (float32, quantised to 8 bits)."""
    h, w = image.shape[:2]
    u8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    if e.blur > 0 or e.motion is not None:
        im = Image.fromarray(u8)
        im = im.filter(ImageFilter.BoxBlur(e.blur) if e.blur > 0 else _motion_kernel(e.motion))
        u8 = np.asarray(im)
    if e.noise > 0:
        bank = noise_bank()
        if max(h, w) > NOISE_BANK // 2:
            reps = (-(-(h + NOISE_BANK) // NOISE_BANK), -(-(w + NOISE_BANK) // NOISE_BANK), 1)
            bank = np.tile(bank, reps)
        oy, ox = e.offset[0] % (bank.shape[0] - h + 1), e.offset[1] % (bank.shape[1] - w + 1)
        n = bank[oy : oy + h, ox : ox + w]
        n = n[::-1] if e.flip & 1 else n
        n = n[:, ::-1] if e.flip & 2 else n
        noisy = u8.astype(np.float32) + n * np.float32(e.noise * 255)
        u8 = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if e.jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=e.jpeg)
        buf.seek(0)
        u8 = np.asarray(Image.open(buf).convert("RGB"))
    return u8.astype(np.float32) * np.float32(1 / 255)
