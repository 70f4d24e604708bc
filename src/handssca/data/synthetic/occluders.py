"""What hides part of the hand: flat shapes, objects held in the grasp and solids in front of it."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from handssca.data.synthetic.photos import Background


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


def object_look(rng: np.random.Generator) -> dict:
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
    return SolidObject(kind, scale, R, centre, **object_look(rng))


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
    return SolidObject(kind, scale, _random_rotation(rng), point * frac, **object_look(rng))
