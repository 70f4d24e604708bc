"""The backgrounds: public-domain photos bundled with scikit-image (prepared once per process with 2x and 4x
reductions) or procedural textures, sampled straight into a view."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from handssca.data.synthetic.views import scale_of
from handssca.frames import pixel_scale
from handssca.messages import described

log = logging.getLogger("handssca.data")


PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "motorcycle_left",
    "brick",
    "grass",
    "gravel",
    "camera",
)


class PhotoBank:
    """The public-domain photos bundled in scikit-image's wheel (:data:`PHOTOS`, all of them, or none
    without scikit-image), reflect-padded, each with 2x and 4x box reductions (uint8 arrays), prepared
    once per process. A photo that scikit-image cannot give is an error naming it: a bank missing some
    photos would make the same sample show another picture on another machine."""

    PAD = 192

    def __init__(self) -> None:
        self.levels: list[list[np.ndarray]] = []
        try:
            from skimage import data as skdata
        except Exception:
            log.warning("scikit-image is not installed: synthetic backgrounds use procedural textures only")
            return
        for name in PHOTOS:
            try:
                im = getattr(skdata, name)() if name != "motorcycle_left" else skdata.stereo_motorcycle()[0]
            except Exception as e:
                raise ValueError(
                    f"skimage.data.{name}: the synthetic backgrounds' photo {name!r} cannot be read ({described(e)}); "
                    "reinstall scikit-image (its wheel holds every photo)"
                ) from None
            im = np.asarray(im)
            im = np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3]
            im = np.pad(im.astype(np.uint8), ((self.PAD, self.PAD), (self.PAD, self.PAD), (0, 0)), mode="reflect")
            level0 = Image.fromarray(im)
            self.levels.append([im, np.asarray(level0.reduce(2)), np.asarray(level0.reduce(4))])

    def __len__(self) -> int:
        return len(self.levels)

    def shape(self, index: int) -> tuple[int, int]:
        """(height, width) of photo ``index`` without its padding."""
        h, w = self.levels[index][0].shape[:2]
        return h - 2 * self.PAD, w - 2 * self.PAD

    def layer(self, index: int, view_to_photo: np.ndarray, gains=(1.0, 1.0, 1.0), blur: float = 0.0, reduced=False):
        """An :class:`~handssca.render.raster.ImageLayer` of photo ``index`` (view_to_photo: 3x3, view
        pixels -> photo pixels). ``reduced``: from the prepared level nearest the view's scale (for numpy
        sampling, which would otherwise reduce the photo itself); else the full photo (GL mipmaps it)."""
        from handssca.render.raster import ImageLayer

        k = int(np.clip(math.floor(math.log2(max(scale_of(view_to_photo), 1e-9))), 0, 2)) if reduced else 0
        shift = np.array([[1.0, 0, self.PAD], [0, 1, self.PAD], [0, 0, 1]])
        f = 2.0**k
        to_level = pixel_scale(f, f) @ shift
        A = to_level @ view_to_photo
        return ImageLayer(self.levels[index][k], A, tuple(float(g) for g in gains), blur=blur, persistent=True)


@dataclass
class Background:
    """A photo crop or a procedural texture covering the canvas (and beyond it, for views that leave it).

    ``kind``: "photo" (``photo``, its square ``rect`` x0, y0, side mapped onto the canvas, ``flip``),
    "noise" (``grid``: smooth noise values on a grid spanning canvas units [-0.5, 1.5]), "stripes"
    (``angle``, ``freq`` per canvas) or "checker" (``cells`` per canvas). ``colours`` (2, 3) for the
    procedural kinds, ``gains`` (3) for photos; ``blur``: out of focus by this many mipmap levels."""

    kind: str
    photo: int = 0
    rect: tuple[float, float, float] = (0.0, 0.0, 1.0)
    flip: bool = False
    gains: np.ndarray = field(default_factory=lambda: np.ones(3))
    colours: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    grid: np.ndarray | None = None
    angle: float = 0.0
    freq: float = 1.0
    cells: int = 2
    blur: float = 0.0


def sample_background(rng: np.random.Generator, photos: PhotoBank, canvas: int, blur_prob: float = 0.3) -> Background:
    """A random background for a canvas of ``canvas`` pixels: a photo (60%) or a procedural texture.

    The numbers drawn from ``rng`` do not depend on the photos: without them (no scikit-image) the
    photo's numbers are drawn all the same, and a texture drawn from a generator seeded with them
    stands in for the photo, so everything drawn after the background is the same either way."""
    if rng.random() < 0.6:
        index = int(rng.integers(len(PHOTOS)))
        h, w = photos.shape(index) if len(photos) else (1, 1)
        side = rng.uniform(0.3, 1.0) * min(h, w)
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        flip = bool(rng.random() < 0.5)
        gains = rng.uniform(0.6, 1.2, 3)
        if len(photos):
            bg = Background("photo", photo=index, rect=(x0, y0, side), flip=flip, gains=gains)
        else:
            drawn = np.array([side, x0, y0, float(flip), *gains], dtype=np.float64).view(np.uint64)
            bg = _procedural_background(np.random.default_rng([index, *drawn.tolist()]))
        blurred_kind = True  # a photo may be out of focus (a stand-in texture takes the blur if it can)
    else:
        bg = _procedural_background(rng)
        blurred_kind = bg.kind == "noise"
    if rng.random() < blur_prob and blurred_kind:
        blur = rng.uniform(0.7, 2.5)
        if bg.kind in ("photo", "noise"):
            bg.blur = blur
    return bg


def _procedural_background(rng: np.random.Generator) -> Background:
    """A random procedural texture: smooth noise, stripes or a checker in two colours."""
    kind = ("noise", "stripes", "checker")[int(rng.integers(3))]
    bg = Background(kind, colours=rng.uniform(0, 1, (2, 3)))
    if kind == "noise":
        grid = np.zeros((33, 33))
        for octave in range(1, 5):  # octave o: a value every 2^-o canvas units, bilinear in between
            n = 2 ** (octave + 1) + 1
            g = rng.normal(size=(n, n)) * 0.5 + 0.5
            grid += (
                np.asarray(Image.fromarray(g.astype(np.float32), mode="F").resize((33, 33), Image.BILINEAR)) / octave
            )
        bg.grid = grid
    elif kind == "stripes":
        bg.angle, bg.freq = rng.uniform(0, np.pi), rng.uniform(3, 20)
    else:
        bg.cells = int(rng.integers(3, 12))
    return bg


def background_layer(bg: Background, photos: PhotoBank, view_to_canvas: np.ndarray, canvas: int, reduced=False):
    """The :class:`~handssca.render.raster.ImageLayer` that draws ``bg`` in a view (view_to_canvas: 3x3,
    view pixels -> canvas pixels). Procedural kinds are tiny images: one period of the stripes, the
    checker's 2x2 cells, the noise grid."""
    from handssca.render.raster import ImageLayer

    if bg.kind == "photo":
        x0, y0, side = bg.rect
        sx = side / canvas
        canvas_to_photo = np.array([[-sx if bg.flip else sx, 0, x0 + (side if bg.flip else 0)], [0, sx, y0], [0, 0, 1]])
        return photos.layer(bg.photo, canvas_to_photo @ view_to_canvas, bg.gains, bg.blur, reduced)
    c1, c2 = bg.colours
    to_units = np.diag([1.0 / canvas, 1.0 / canvas, 1.0]) @ view_to_canvas  # view px -> canvas units (u, v)
    if bg.kind == "noise":
        t = np.clip((bg.grid - 1.0) / 1.6 + 0.5, 0, 1)[..., None]
        # grid point i sits at canvas unit -0.5 + i / 16
        A = np.array([[16.0, 0, 8.0], [0, 16.0, 8.0], [0, 0, 1]]) @ to_units
        return ImageLayer(_u8(c2 + (c1 - c2) * t), A, blur=bg.blur)
    if bg.kind == "stripes":
        n = 32  # texel i holds the phase (i + 0.5) / n of a period
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.arange(n) + 0.5) / n)[None, :, None]
        d = bg.freq * n * np.array([np.cos(bg.angle), np.sin(bg.angle)])
        A = np.array([[d[0], d[1], -0.5], [0, 0, 0], [0, 0, 1]]) @ to_units
        return ImageLayer(_u8(c2 + (c1 - c2) * t), A, repeat=True)
    cells = np.array([[c1, c2], [c2, c1]])  # cell (floor(n u), floor(n v)) has colour c1 when the sum is even
    A = np.array([[bg.cells, 0, -0.5], [0, bg.cells, -0.5], [0, 0, 1]]) @ to_units
    return ImageLayer(_u8(cells), A, repeat=True, nearest=True)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(x) * 255 + 0.5, 0, 255).astype(np.uint8)
