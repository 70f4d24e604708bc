"""Reading user images robustly: any PIL-readable file or array -> (H, W, 3) uint8 RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}


class ImageReadError(ValueError):
    """An input image is missing, empty, truncated or not an image."""


def to_rgb_uint8(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale (H,W), RGBA (H,W,4), 16-bit or float [0,1] arrays -> (H, W, 3) uint8 RGB."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) image; got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float64) / (np.iinfo(a.dtype).max if a.dtype.kind in "ui" else 1.0)
        a = (a[..., :3] * alpha + (1 - alpha) * (np.iinfo(a.dtype).max if a.dtype.kind in "ui" else 1.0)).astype(a.dtype)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype.kind in "ui":
        top = 65535.0 if a.max() > 255 else 255.0
        return np.clip(a.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.dtype.kind == "f":
        return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ImageReadError(f"{name}: unsupported pixel type {a.dtype}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; grayscale, RGBA, palette and 16-bit files are converted."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return to_rgb_uint8(np.asarray(im).astype(np.uint16 if im.mode.startswith("I;16") else np.int64), str(path))
            if im.mode not in ("RGB", "RGBA", "L"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            return to_rgb_uint8(np.asarray(im), str(path))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e})") from None
