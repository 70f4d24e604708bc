"""Reading user images robustly: any PIL-readable file or array -> (H, W, 3) uint8 RGB."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handssca.frames import pixel_scale
from handssca.messages import described

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}


class ImageReadError(ValueError):
    """An input image is missing, empty, truncated or not an image."""


def _white_level(a: np.ndarray, name: str) -> float:
    """The value of full intensity in an image array, from its type alone: 255 for uint8, 65535 for
    uint16 (16-bit pixels, whatever their largest value), 1.0 for floats; other integer types must hold
    8-bit values (0-255; ImageReadError otherwise, since their depth is not declared)."""
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    if a.dtype.kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ImageReadError(
                f"{name}: {a.dtype} pixels {lo}..{hi}: expected 8-bit values 0-255 in a {a.dtype} array "
                "(16-bit pixels: a uint16 array; or floats in [0, 1])"
            )
        return 255.0
    if a.dtype.kind == "f":
        return 1.0
    raise ImageReadError(f"{name}: unsupported pixel type {a.dtype}")


def to_rgb_uint8(array: np.ndarray, name: str = "image") -> np.ndarray:
    """Grayscale (H,W), RGBA (H,W,4), 16-bit or float [0,1] arrays -> (H, W, 3) uint8 RGB.

    The depth comes from the array's type (:func:`_white_level`): a uint16 image is always scaled from
    0-65535, also when its brightest pixel is at most 255."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) image; got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    top = _white_level(a, name)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float64) / top
        a = (a[..., :3] * alpha + (1 - alpha) * top).astype(a.dtype)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    return np.clip(a.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


#: The most pixels decoded from one image file (100 megapixels, ~300 MB as RGB). A file whose header
#: declares more is refused before decoding, except a JPEG read at a reduced scale (``load_image(..,
#: scale=...)``): it is decoded at 1/2, 1/4 or 1/8 of its size and only those pixels count. Pillow's own
#: decompression-bomb guard refuses any header over ~179 megapixels before that.
MAX_DECODED_PIXELS = 100_000_000


@dataclass
class ScaledImage:
    """An image decoded at a working resolution, and the map back to the file's own pixels.

    ``pixels``: (h, w, 3) uint8 RGB at the working resolution. ``original_hw``: (H, W) of the file.
    ``scale_xy``: original pixels per working pixel along x and y (1 when not reduced). Pixel centres
    are at integer coordinates in both frames: ``u_original + 0.5 = (u_working + 0.5) * scale``.
    """

    pixels: np.ndarray
    original_hw: tuple[int, int]
    scale_xy: tuple[float, float] = (1.0, 1.0)
    name: str = "image"

    @classmethod
    def full(cls, pixels: np.ndarray, name: str = "image") -> ScaledImage:
        return cls(pixels, (int(pixels.shape[0]), int(pixels.shape[1])), (1.0, 1.0), name)

    def affine_to_working(self) -> np.ndarray:
        """(2, 3) affine from original pixel coordinates to working pixel coordinates."""
        return pixel_scale(*self.scale_xy)[:2]

    def to_working(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) original pixels -> working pixels."""
        A = self.affine_to_working()
        return np.asarray(points, dtype=np.float64) @ A[:, :2].T + A[:, 2]

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) working pixels -> original pixels."""
        return (np.asarray(points, dtype=np.float64) + 0.5) * np.asarray(self.scale_xy) - 0.5

    def K_to_working(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) intrinsics of the original image -> those of the working image."""
        A = np.vstack([self.affine_to_working(), [0.0, 0.0, 1.0]])
        return A @ np.asarray(K, dtype=np.float64)

    def box_to_working(self, box: np.ndarray) -> np.ndarray:
        """(4,) x, y, w, h in original pixels -> working pixels."""
        x, y, w, h = (float(v) for v in box)
        (x2, y2), sx, sy = self.to_working(np.array([[x, y]]))[0], *self.scale_xy
        return np.array([x2, y2, w / sx, h / sy])


def _megapixels(w: int, h: int) -> str:
    return f"{w}x{h} pixels ({w * h / 1e6:.0f} megapixels)"


def _declared_size(path: Path) -> tuple[int, int] | None:
    """(W, H) from a file's header through Pillow's format registry, without its size guard (messages only)."""
    from PIL import Image

    Image.init()
    try:
        with open(path, "rb") as fp:
            head = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                if accept is not None and not accept(head):
                    continue
                try:
                    fp.seek(0)
                    return tuple(factory(fp, str(path)).size)
                except Exception:
                    continue
    except OSError:
        return None
    return None


def _bomb_message(path: Path, e: Exception) -> str:
    import re

    size = _declared_size(path)
    m = re.search(r"\((\d+) pixels\)", str(e))
    declared = _megapixels(*size) if size else f"{int(m.group(1)) / 1e6:.0f} megapixels" if m else "too many pixels"
    return (
        f"{path}: the header declares {declared}, over the {MAX_DECODED_PIXELS / 1e6:.0f} megapixels decoded at "
        "most per image; refused before decoding (a decompression bomb or a damaged file?)"
    )


def load_image(
    path: str | os.PathLike,
    scale: float | Callable[[int, int], float] = 1.0,
    max_pixels: int = MAX_DECODED_PIXELS,
) -> ScaledImage:
    """Decode an image file reduced by ``scale`` (>= 1; or a function of the header's (W, H) that returns it).

    JPEGs are decoded directly at 1/2, 1/4 or 1/8 size (``Image.draft``) and every format is then reduced
    in 8/16-bit pixels (no float copy of the full image) to ``round(W / scale) x round(H / scale)``.
    A picture with an EXIF orientation (phones) is turned upright: its size, pixels and every coordinate
    are those of the picture as it is meant to be seen (``scale`` is called with that (W, H)).
    Grayscale, RGBA, palette and 16-bit files are converted to RGB. Raises :class:`ImageReadError` naming
    the file for a missing, empty, truncated, corrupt or oversized (more than ``max_pixels`` decoded) file.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():  # the same first checks as model/files.load_torch_file, with this file kind's error
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageReadError(_bomb_message(path, e)) from None
    except Exception as e:  # any decoder failure on a damaged file is this file's problem
        raise ImageReadError(f"{path}: not a readable image ({described(e)})") from None
    with im:
        W, H = im.size
        if W <= 0 or H <= 0:
            raise ImageReadError(f"{path}: empty image ({W}x{H} pixels)")
        turn = _exif_transpose(im)
        swap = turn in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE)
        swap |= turn in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
        s = float((scale(H, W) if swap else scale(W, H)) if callable(scale) else scale)
        if not np.isfinite(s) or s < 1.0:
            s = 1.0
        need = math.sqrt(W * H / max_pixels)
        if need > 1.0:  # JPEGs decode at 1/2..1/8 rather than over the limit (a small box on a huge photo)
            s = max(s, float(min(8, 2 ** math.ceil(math.log2(need)))))
        target = (max(1, round(W / s)), max(1, round(H / s)))
        try:
            k = 1.0
            if target != (W, H) and im.format == "JPEG":
                drafted = im.draft(None, target)
                if drafted is not None:
                    k = W / drafted[1][2]
            dw, dh = im.size
            if dw * dh > max_pixels:
                at = "" if (dw, dh) == (W, H) else f", {dw}x{dh} at the smallest decodable scale"
                raise ImageReadError(
                    f"{path}: {_megapixels(W, H)}{at}: over the {max_pixels / 1e6:.0f} megapixels "
                    "decoded at most per image"
                )
            im.load()
            if im.mode not in ("RGB", "RGBA", "L", "I;16", "I;16B", "I;16L", "I"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            if im.size != target:
                gap = 3.0 if im.mode in ("RGB", "RGBA", "L", "I") else None
                im = im.resize(target, Image.Resampling.BILINEAR, reducing_gap=gap)
            if turn is not None:  # the picture as it is meant to be seen (a phone's EXIF orientation)
                im = im.transpose(turn)
            if im.mode.startswith("I;16"):
                a = np.asarray(im).astype(np.uint16)
            elif im.mode == "I":  # 16-bit PNG/PGM grey as older Pillow reads them; 32-bit only beyond 65535
                a = np.asarray(im).astype(np.int64)
                if a.size and (a.min() < 0 or a.max() > 65535):
                    raise ImageReadError(
                        f"{path}: 32-bit integer pixels ({a.min()}..{a.max()}); expected 8- or 16-bit images"
                    )
                a = a.astype(np.uint16)
            else:
                a = np.asarray(im)
        except ImageReadError:
            raise
        except Exception as e:  # truncated or corrupt data, a decoder error, no memory for this one file
            raise ImageReadError(f"{path}: not a readable image ({described(e)})") from None
        scale_xy = (k * dw / target[0], k * dh / target[1])
    if swap:
        (W, H), scale_xy = (H, W), scale_xy[::-1]
    return ScaledImage(to_rgb_uint8(a, str(path)), (H, W), scale_xy, str(path))


#: EXIF orientation (tag 0x0112) -> the transposition that shows the picture upright (as Pillow's exif_transpose).
_ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270"}
_ORIENTATION.update({7: "TRANSVERSE", 8: "ROTATE_90"})


def _exif_transpose(im):
    """The ``Image.Transpose`` that turns an opened image upright by its EXIF orientation, or None."""
    from PIL import Image

    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # an unreadable EXIF block does not make the picture unreadable
        return None
    name = _ORIENTATION.get(value)
    return None if name is None else getattr(Image.Transpose, name)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file at full resolution (at most :data:`MAX_DECODED_PIXELS`);
    grayscale, RGBA, palette and 16-bit files are converted."""
    return load_image(path).pixels
