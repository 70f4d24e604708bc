"""The pieces of :class:`handssca.data.synthetic.SyntheticHands`' pictures, drawn straight into a view.

A scene is described once in the coordinates of its *canvas* (the camera K and a square image of
``canvas`` pixels) by plain data drawn from a random generator; a *view* is a similarity map M
(2x3, canvas pixels -> view pixels, see :func:`handssca.data.transforms.crop_affine`) and its size.
Everything here draws a view directly (no canvas is ever rendered, then cropped): backgrounds and
flat occluders through Pillow's affine sampling, the hand and 3D objects by the renderer with the
crop's intrinsics. Prepared once per process: the photos (with 2x and 4x reductions), mesh templates
of the held objects and a bank of camera noise.
"""

from __future__ import annotations

import functools
import io
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from handssca.frames import pixel_scale
from handssca.messages import described

log = logging.getLogger("handssca.data")

SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.90, 0.70, 0.58],
        [0.80, 0.60, 0.47],
        [0.66, 0.46, 0.33],
        [0.50, 0.34, 0.23],
        [0.34, 0.22, 0.15],
    ]
)
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
NOISE_BANK = 512  # side of the bank of unit Gaussian camera noise (views larger than this tile it)


# ------------------------------------------------------------------------------------------ affine helpers
def affine3(M: np.ndarray) -> np.ndarray:
    """A 2x3 affine as a 3x3 matrix."""
    return np.vstack([np.asarray(M, dtype=np.float64), [0.0, 0.0, 1.0]])


def _pillow_coeffs(view_to_src: np.ndarray) -> tuple[float, ...]:
    """Pillow's AFFINE data for a map of OpenCV pixel coordinates (centres at integers) view -> source;
    Pillow puts pixel centres at +0.5."""
    c = np.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    ci = np.array([[1.0, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    return tuple(float(x) for x in (c @ view_to_src @ ci)[:2].ravel())


def _scale_of(A: np.ndarray) -> float:
    return float(math.sqrt(abs(np.linalg.det(A[:2, :2]))))


# ------------------------------------------------------------------------------------------ photos
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

        k = int(np.clip(math.floor(math.log2(max(_scale_of(view_to_photo), 1e-9))), 0, 2)) if reduced else 0
        shift = np.array([[1.0, 0, self.PAD], [0, 1, self.PAD], [0, 0, 1]])
        f = 2.0**k
        to_level = pixel_scale(f, f) @ shift
        A = to_level @ view_to_photo
        return ImageLayer(self.levels[index][k], A, tuple(float(g) for g in gains), blur=blur, persistent=True)


# ------------------------------------------------------------------------------------------ backgrounds
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


# ------------------------------------------------------------------------------------------ flat occluders
@dataclass
class FlatOccluder:
    """A flat shape in front of everything: ``polygon`` (K, 2) canvas pixels, filled with a background
    (``texture``) or a plain ``colour``, shaded by a gradient along canvas x from ``shade[0]`` to ``shade[1]``."""

    polygon: np.ndarray
    colour: np.ndarray | None
    texture: Background | None
    shade: tuple[float, float]


def shape_polygon(rng: np.random.Generator, centre: np.ndarray, radius: float) -> np.ndarray:
    """An ellipse (48-gon), a rotated rectangle or a random convex polygon around centre (canvas pixels)."""
    kind = int(rng.integers(3))
    ang = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.4, 1.0)
    if kind == 0:
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t) * aspect], 1) * radius
    elif kind == 1:
        pts = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [radius, radius * aspect]
    else:
        t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 9))))
        pts = np.stack([np.cos(t), np.sin(t) * aspect], 1) * radius
    c, s = np.cos(ang), np.sin(ang)
    return pts @ np.array([[c, s], [-s, c]]) + centre


def polygon_mask(polygon_view: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: pixels whose centres fall in the polygon (view pixels)."""
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in polygon_view], fill=255)
    return np.asarray(im) > 0


# ------------------------------------------------------------------------------------------ objects
@functools.cache
def unit_mesh(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Templates (vertices, faces): "sphere" (radius 1), "cylinder" (radius 1, z in [-1, 1], capped,
    sharp rims), "box" ([-1, 1]^3, flat faces). Outward counter-clockwise triangles."""
    if kind == "sphere":
        from scipy.spatial import ConvexHull

        n = 240  # Fibonacci sphere, triangulated by its hull
        i = np.arange(n) + 0.5
        phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5**0.5) * i
        v = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
        faces = ConvexHull(v).simplices
    elif kind == "cylinder":
        n = 24
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ring = np.stack([np.cos(t), np.sin(t)], 1)
        side = np.concatenate([np.c_[ring, -np.ones(n)], np.c_[ring, np.ones(n)]])
        caps = np.concatenate([np.c_[ring, -np.ones(n)], np.c_[ring, np.ones(n)], [[0, 0, -1], [0, 0, 1]]])
        v = np.concatenate([side, caps])
        k = np.arange(n)
        nk = (k + 1) % n
        f = [np.stack([k, nk, n + nk], 1), np.stack([k, n + nk, n + k], 1)]
        b = 2 * n
        f.append(np.stack([np.full(n, b + 2 * n), b + nk, b + k], 1))  # bottom cap, facing -z
        f.append(np.stack([np.full(n, b + 2 * n + 1), b + n + k, b + n + nk], 1))  # top cap, facing +z
        faces = np.concatenate(f)
    elif kind == "box":
        v, f = [], []
        for axis in range(3):
            for sign in (-1.0, 1.0):
                a, b = (axis + 1) % 3, (axis + 2) % 3
                quad = np.zeros((4, 3))
                quad[:, axis] = sign
                quad[:, a] = [-1, 1, 1, -1]
                quad[:, b] = [-1, -1, 1, 1]
                base = len(v) * 4
                v.append(quad)
                f += (
                    [[base, base + 1, base + 2], [base, base + 2, base + 3]]
                    if sign > 0
                    else [
                        [base, base + 2, base + 1],
                        [base, base + 3, base + 2],
                    ]
                )
        v, faces = np.concatenate(v), np.array(f)
    else:
        raise ValueError(f"unit_mesh: expected sphere, cylinder or box; got {kind!r}")
    # orient every triangle outwards (the hull's order is arbitrary)
    tri = v[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flip = (normal * tri.mean(1)).sum(1) < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return v.astype(np.float64), faces.astype(np.int64)


@dataclass
class SolidObject:
    """A sphere, cylinder or box in the camera frame: ``vertices = unit @ (scale * R).T + centre``."""

    kind: str
    scale: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    colours: np.ndarray  # (2, 3): a cylinder's bands alternate; other kinds use the first
    bands: int
    specular: float
    shininess: float

    def mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices (N, 3), faces (F, 3), per-vertex colours (N, 3))."""
        unit, faces = unit_mesh(self.kind)
        v = (unit * self.scale) @ self.rotation.T + self.centre
        if self.kind == "cylinder" and self.bands > 1:
            band = np.floor((unit[:, 2] + 1) / 2 * self.bands * 0.999).astype(int) % 2
            col = self.colours[band]
        else:
            col = np.broadcast_to(self.colours[0], v.shape)
        return v, faces, np.ascontiguousarray(col)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _object_look(rng: np.random.Generator) -> dict:
    vivid = rng.random() < 0.6
    colours = rng.uniform(0, 1, (2, 3)) if vivid else rng.uniform(0.1, 0.9, (2, 1)) * rng.uniform(0.85, 1.0, (2, 3))
    return dict(
        colours=colours,
        bands=int(rng.integers(2, 7)) if rng.random() < 0.4 else 1,
        specular=float(rng.uniform(0.05, 0.5)),
        shininess=float(rng.uniform(10, 80)),
    )


def held_object(rng: np.random.Generator, joints: np.ndarray) -> SolidObject:
    """A cylinder, ball or box in the grasp of a hand with joints (21, 3) (FreiHAND order, camera frame):
    centred between the palm and the middle phalanges, a little off the palm's plane to either side,
    long axis across the palm."""
    palm = joints[[0, 5, 9, 13, 17]].mean(0)
    middle = joints[[6, 10, 14, 18]].mean(0)
    across = joints[5] - joints[17]
    across /= np.linalg.norm(across) + 1e-12
    normal = np.cross(joints[9] - joints[0], across)
    normal /= np.linalg.norm(normal) + 1e-12
    centre = palm + rng.uniform(0.3, 0.8) * (middle - palm) + normal * rng.choice([-1.0, 1.0]) * rng.uniform(0, 0.015)
    kind = ("cylinder", "sphere", "box")[int(rng.choice(3, p=[0.5, 0.25, 0.25]))]
    axis = across + rng.normal(0, 0.3, 3)
    axis /= np.linalg.norm(axis)
    helper = np.cross(axis, normal)
    helper /= np.linalg.norm(helper) + 1e-12
    R = np.stack([helper, np.cross(axis, helper), axis], 1)  # the unit mesh's z goes along the axis
    if kind == "cylinder":
        r = rng.uniform(0.012, 0.028)
        scale = np.array([r, r, rng.uniform(0.04, 0.08)])
    elif kind == "sphere":
        scale = np.full(3, rng.uniform(0.02, 0.035))
    else:
        scale = np.array([rng.uniform(0.01, 0.03), rng.uniform(0.01, 0.03), rng.uniform(0.03, 0.06)])
    return SolidObject(kind, scale, R, centre, **_object_look(rng))


def front_object(rng: np.random.Generator, point: np.ndarray, hand_size: float) -> SolidObject:
    """A solid between the camera and ``point`` (a hand vertex, camera frame): on the ray to it at
    55-85% of its depth, sized in proportion to the hand (``hand_size`` metres)."""
    frac = rng.uniform(0.55, 0.85)
    kind = ("cylinder", "sphere", "box")[int(rng.integers(3))]
    scale = hand_size * frac * rng.uniform(0.08, 0.2, 3)
    if kind == "sphere":
        scale[:] = scale[0]
    elif kind == "cylinder":
        scale[1] = scale[0]
        scale[2] *= 2.5
    return SolidObject(kind, scale, _random_rotation(rng), point * frac, **_object_look(rng))


# ------------------------------------------------------------------------------------------ the forearm
#: The length over which a forearm turns from the hand's axis to its own (metres).
BEND_M = 0.05


@dataclass
class Forearm:
    """The forearm that continues a hand's wrist, in the camera frame: a tube from ``start`` (a point inside
    the open end of the hand's mesh) leaving along ``hand_axis`` (unit, the hand's wrist-to-elbow direction)
    and turning to ``axis`` (the arm's) over :data:`BEND_M`, ``length`` metres long, with an
    elliptic section (``radii`` along ``across`` and ``axis x across``, growing by ``flare`` at the far
    end), skin up to ``sleeve_at`` metres (None: bare arm) and a sleeve (``sleeve_colour``) beyond."""

    start: np.ndarray
    axis: np.ndarray
    hand_axis: np.ndarray
    across: np.ndarray
    radii: np.ndarray
    length: float
    flare: float
    skin: np.ndarray
    sleeve_at: float | None
    sleeve_colour: np.ndarray
    specular: float
    shininess: float

    def mesh(self, segments: int = 20, rings: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices (N, 3), faces (F, 3) outward, per-vertex colours (N, 3)); the far end capped."""
        t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        along = np.linspace(0.0, 1.0, rings) ** 1.5 * self.length  # denser near the wrist
        along = np.sort(np.concatenate([along, [0.01, 0.02, 0.04]]))  # the bend near the wrist
        if self.sleeve_at is not None and 0 < self.sleeve_at < self.length:  # a sharp cuff: two rings there
            along = np.sort(np.concatenate([along, [self.sleeve_at, self.sleeve_at + 1e-4]]))
        grow = 1.0 + (self.flare - 1.0) * along / self.length
        sleeve = np.zeros(len(along), bool) if self.sleeve_at is None else along > self.sleeve_at
        grow = grow * np.where(sleeve, 1.12, 1.0)
        # the centre line leaves the hand along the hand's own axis and turns to the arm's over BEND_M (a
        # bent wrist), so that the tube fills the open end of the hand's mesh whatever the bend
        w = np.clip(along / BEND_M, 0.0, 1.0)[:, None]
        direction = (1 - w) * self.hand_axis + w * self.axis
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        steps = np.diff(along, prepend=0.0)[:, None] * np.vstack([direction[:1], direction[:-1]])
        centres = self.start + np.cumsum(steps, axis=0)
        across = self.across - (direction @ self.across)[:, None] * direction
        across /= np.linalg.norm(across, axis=1, keepdims=True)
        b = np.cross(direction, across)
        ring = (
            np.cos(t)[None, :, None] * self.radii[0] * across[:, None]
            + np.sin(t)[None, :, None] * self.radii[1] * b[:, None]
        )
        v = centres[:, None] + grow[:, None, None] * ring
        n_r = len(along)
        v = np.concatenate([v.reshape(-1, 3), [centres[-1]]])
        k = np.arange(segments)
        nk = (k + 1) % segments
        faces = []
        for i in range(n_r - 1):
            a0, a1 = i * segments, (i + 1) * segments
            faces += [np.stack([a0 + k, a1 + k, a1 + nk], 1), np.stack([a0 + k, a1 + nk, a0 + nk], 1)]
        last = (n_r - 1) * segments
        faces.append(np.stack([np.full(segments, len(v) - 1), last + nk, last + k], 1))
        faces = np.concatenate(faces)
        tri = v[faces]  # orient outwards from the centre line (the cap: along the arm)
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = tri.mean(1)
        nearest = np.argmin(np.linalg.norm(centre[:, None] - centres[None], axis=2), axis=1)
        radial = centre - centres[nearest]
        radial -= (radial * direction[nearest]).sum(1, keepdims=True) * direction[nearest]
        radial = np.where((np.linalg.norm(radial, axis=1) < 1e-6)[:, None], self.axis[None], radial)
        flip = (normal * radial).sum(1) < 0
        faces[flip] = faces[flip][:, ::-1]
        colours = np.where(np.repeat(sleeve, segments)[:, None], self.sleeve_colour[None], self.skin[None])
        colours = np.concatenate([colours, [self.sleeve_colour if sleeve[-1] else self.skin]])
        return v, faces.astype(np.int64), colours


def sample_forearm(
    rng: np.random.Generator, vertices: np.ndarray, joints: np.ndarray, tone: np.ndarray, look: dict
) -> Forearm:
    """A forearm for a hand (vertices (V, 3), joints (21, 3) FreiHAND order, camera frame) of skin ``tone``:
    along the wrist-to-middle-knuckle line turned by up to 30 degrees (the wrist bent), starting just inside
    the open end of the hand's mesh with the section of its last centimetre, 22-30 cm long, widening by
    25-50%; half of the arms wear a sleeve from 2-12 cm past the wrist."""
    wrist, knuckle = joints[0], joints[9]
    axis = wrist - knuckle
    axis /= np.linalg.norm(axis) + 1e-12
    bend = rng.normal(size=3)
    bend -= (bend @ axis) * axis
    bend /= np.linalg.norm(bend) + 1e-12
    angle = np.radians(rng.uniform(0, 30))
    arm = np.cos(angle) * axis + np.sin(angle) * bend  # unit: bend is normal to axis
    across = joints[5] - joints[17]
    across -= (across @ axis) * axis  # the section is measured across the hand's own axis
    across /= np.linalg.norm(across) + 1e-12
    other = np.cross(axis, across)
    rel = vertices - wrist
    t = rel @ axis
    end = t.max()  # where the hand's mesh ends, past the wrist
    near = t > end - 0.012  # its last centimetre: the section the arm continues
    if near.sum() < 8:
        near = np.argsort(-t)[:64]
    pa, pb = rel[near] @ across, rel[near] @ other
    centre = wrist + across * (pa.max() + pa.min()) / 2 + other * (pb.max() + pb.min()) / 2
    radii = np.array([(pa.max() - pa.min()) / 2, (pb.max() - pb.min()) / 2]) * 0.97
    radii = np.maximum(radii, 0.006)
    start = centre + (end - 0.004) * axis  # just inside the mesh's open end: the seam is hidden
    skin = np.clip(tone * rng.uniform(0.95, 1.05, 3), 0, 1)
    sleeve_at = float(rng.uniform(0.03, 0.13)) if rng.random() < 0.5 else None
    sleeve = _object_look(rng)["colours"][0]
    return Forearm(
        start=start,
        axis=arm,
        hand_axis=axis,
        across=across,
        radii=radii,
        length=float(rng.uniform(0.22, 0.30)),
        flare=float(rng.uniform(1.25, 1.5)),
        skin=skin,
        sleeve_at=sleeve_at,
        sleeve_colour=np.asarray(sleeve, dtype=np.float64),
        specular=float(look["specular"]),
        shininess=float(look["shininess"]),
    )


# ------------------------------------------------------------------------------------------ hand shading
def finger_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 15 phalanges of a hand's joints (21, 3) (FreiHAND order): starts (15, 3), ends (15, 3), and
    (15,) (finger 0-4: thumb..pinky, level 0-2: proximal..distal) as finger * 3 + level."""
    idx = np.array([[1 + 4 * f + k, 2 + 4 * f + k] for f in range(5) for k in range(3)])
    return joints[idx[:, 0]], joints[idx[:, 1]], np.arange(15)


# MANO joint (16, MANO order) -> finger in FreiHAND's thumb..pinky numbering, -1 for the wrist / palm
MANO_JOINT_FINGER = np.array([-1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 3, 3, 3, 0, 0, 0])


def ambient_occlusion(
    vertices: np.ndarray, joints: np.ndarray, vertex_finger: np.ndarray, radius: float = 0.009, reach: float = 0.02
) -> np.ndarray:
    """A cheap pose-dependent ambient occlusion (V,) in [0.35, 1]: a vertex darkens near the phalanges of
    other fingers (gaps between fingers, a palm under curled fingers). ``vertex_finger`` (V,): the
    finger (0-4) that moves each vertex, -1 for the palm; palm vertices only see middle and distal
    phalanges (the proximal ones start at the knuckles, always next to the palm)."""
    a, b, seg = finger_segments(joints.astype(np.float32))
    d = b - a
    rel = vertices.astype(np.float32)[:, None] - a[None]  # (V, 15, 3)
    t = np.einsum("vsc,sc->vs", rel, d) / np.maximum(np.einsum("sc,sc->s", d, d), 1e-12)
    np.clip(t, 0, 1, out=t)
    rel -= t[..., None] * d[None]
    dist = np.sqrt(np.einsum("vsc,vsc->vs", rel, rel))
    seg_finger, level = seg // 3, seg % 3
    counts = (seg_finger[None] != vertex_finger[:, None]) & ((vertex_finger[:, None] >= 0) | (level[None] > 0))
    closeness = np.clip(1 - (dist - radius) / reach, 0, 1)
    closeness *= closeness * counts
    return np.clip(1 - 0.45 * closeness.sum(1), 0.35, 1.0)


# ------------------------------------------------------------------------------------------ camera effects
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


# ------------------------------------------------------------------------------------------ light and skin
def sample_lighting(rng: np.random.Generator):
    """Environment-like light: a key light (mostly from the camera's side, sometimes from behind the
    hand), a weaker fill light, and a hemispheric ambient term (sky above, ground bounce below)."""
    from handssca.render.raster import Lighting

    warmth = rng.uniform(-0.12, 0.12)
    key_col = rng.uniform(0.45, 0.85) * np.array([1 + warmth, 1.0, 1 - warmth])
    key = np.array([rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9), 1.0 if rng.random() < 0.9 else -0.6])
    fill = np.array([-key[0] + rng.normal(0, 0.3), -key[1] + rng.normal(0, 0.3), rng.uniform(0.3, 1.0)])
    fill_col = rng.uniform(0.0, 0.3) * np.array([1 - warmth, 1.0, 1 + warmth])
    sky = rng.uniform(0.2, 0.45) * np.array([0.95, 1.0, 1.05 + rng.uniform(0, 0.15)])
    ground = rng.uniform(0.08, 0.25) * np.array([1.05, 1.0, 0.9])
    tilt = rng.normal(0, 0.4, 2)
    up = np.array([tilt[0], -1.0, tilt[1]])
    return Lighting([(key, key_col), (fill, fill_col)], tuple(sky), tuple(ground), tuple(up / np.linalg.norm(up)))
