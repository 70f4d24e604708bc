"""The paper's crop/augment pipeline as small pure functions (numpy).

Conventions: pixel centres at integer coordinates (OpenCV); camera frame x right, y down, z
forward. A crop is the affine map ``p' = s Rot(theta) (p - centre) + (size - 1) / 2`` from the
original image to the crop. Rotating the image by theta equals rotating the camera-frame scene by
``Rz(theta)`` about the optical axis, so 3D labels, the hand's root orientation and the crop's
intrinsics stay consistent (exact for square pixels, fx = fy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from handssca.frames import sampled_region


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges (the official ``get_aug_config``)."""

    scale_sigma: float = 0.25  # s = 1 + 0.25 clip(N(0,1), -1, 1) in [0.75, 1.25]
    rot_deg_sigma: float = 30.0  # rot = 30 clip(N(0,1), -2, 2) in [-60, 60] degrees ...
    rot_prob: float = 0.6  # ... with probability 0.6, else 0
    color_range: float = 0.2  # per-channel multiplier U(0.8, 1.2)


@dataclass(frozen=True)
class Augment:
    """One draw of the augmentation: crop-window scale, in-plane rotation (radians), colour gains."""

    scale: float = 1.0
    rot: float = 0.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


def sample_augment(rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> Augment:
    """Draw an :class:`Augment` with the official distributions."""
    scale = 1.0 + cfg.scale_sigma * float(np.clip(rng.normal(), -1.0, 1.0))
    rot_deg = cfg.rot_deg_sigma * float(np.clip(rng.normal(), -2.0, 2.0)) if rng.random() < cfg.rot_prob else 0.0
    color = tuple(float(c) for c in rng.uniform(1 - cfg.color_range, 1 + cfg.color_range, 3))
    return Augment(scale, np.deg2rad(rot_deg), color)  # type: ignore[arg-type]


def bbox_from_points(points: np.ndarray, expansion: float = 1.5) -> np.ndarray:
    """(x, y, w, h) around 2D points (K, 2), centred, sides scaled by ``expansion`` (``get_bbox``)."""
    lo, hi = points.min(0), points.max(0)
    c, size = (lo + hi) / 2, (hi - lo) * expansion
    return np.array([c[0] - size[0] / 2, c[1] - size[1] / 2, size[0], size[1]])


def square_bbox(bbox: np.ndarray, image_wh: tuple[int, int] | None = None, expansion: float = 1.0) -> np.ndarray | None:
    """The official ``process_bbox``: clip to the image, square it (aspect 1) and scale by ``expansion``;
    None if empty. As the official code, the far corner is measured from the clipped near corner
    (``x2 = min(W - 1, x1 + max(0, w - 1))``), so clipping on the left or top shifts the box."""
    x, y, w, h = (float(v) for v in bbox)
    if image_wh is not None:
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(image_wh[0] - 1.0, x1 + max(0.0, w - 1)), min(image_wh[1] - 1.0, y1 + max(0.0, h - 1))
        if w * h <= 0 or x2 < x1 or y2 < y1:
            return None
        x, y, w, h = x1, y1, x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return None
    c = np.array([x + w / 2, y + h / 2])
    side = max(w, h) * expansion
    return np.array([c[0] - side / 2, c[1] - side / 2, side, side])


def rot_z(theta: float) -> np.ndarray:
    """Rotation by theta about the camera's z axis (3, 3)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_affine(bbox: np.ndarray, out_size: int, scale: float = 1.0, rot: float = 0.0) -> np.ndarray:
    """2x3 affine from original pixels to crop pixels for a square ``bbox`` window scaled by ``scale``."""
    centre = np.array([bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2])
    s = out_size / (bbox[2] * scale)
    R = rot_z(rot)[:2, :2] * s
    return np.hstack([R, ((out_size - 1) / 2 - R @ centre)[:, None]])


def apply_affine(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Map 2D points (K, 2) through a 2x3 affine."""
    return points @ M[:, :2].T + M[:, 2]


def warp_image(image: np.ndarray, M: np.ndarray, out_size: int) -> np.ndarray:
    """Bilinear warp of an (H, W, C) float image by the affine M into (out_size, out_size, C); zeros outside."""
    A = M[:, :2]
    Ainv = np.linalg.inv(A)
    # ndimage works in (row, col) = (y, x) index space
    mat = Ainv[::-1, ::-1]
    offset = (-Ainv @ M[:, 2])[::-1]
    out = np.empty((out_size, out_size, image.shape[2]), dtype=np.float32)
    for ch in range(image.shape[2]):
        out[..., ch] = ndimage.affine_transform(
            image[..., ch], mat, offset, (out_size, out_size), order=1, mode="constant", cval=0.0
        )
    return out


def warp_region(image: np.ndarray, M: np.ndarray, lo, hi, out_size: int) -> np.ndarray:
    """:func:`warp_image` of a uint8 (H, W, 3) image by M into (out_size, out_size, 3) float32 in [0, 1],
    converting to float only the part the crop samples: the pixels between ``lo`` and ``hi`` (x, y; the
    crop's window in the image) with a margin (:func:`~handssca.frames.sampled_region`)."""
    hi_, wi = image.shape[:2]
    x0, y0, x1, y1 = sampled_region(lo, hi, wi, hi_)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((out_size, out_size, 3), np.float32)
    region = image[y0:y1, x0:x1].astype(np.float32)
    region *= np.float32(1.0 / 255.0)
    Mr = M.copy()
    Mr[:, 2] += M[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixel p is image pixel p + (x0, y0)
    return warp_image(region, Mr, out_size)


def crop_intrinsics(K: np.ndarray, M: np.ndarray, rot: float) -> np.ndarray:
    """Intrinsics of the crop whose scene was rotated by Rz(rot): K' = [[s f, 0, c'], [0, s f, c'_y]]."""
    s = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    if rot == 0.0:
        K2 = K.copy()
        K2[:2] = M @ K  # exact for any fx, fy when there is no rotation
        return K2
    f = s * (K[0, 0] + K[1, 1]) / 2
    c = apply_affine(K[:2, 2][None], M)[0]
    return np.array([[f, 0.0, c[0]], [0.0, f, c[1]], [0.0, 0.0, 1.0]])


def rotate_root(global_orient: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of R @ Rodrigues(global_orient)."""
    from scipy.spatial.transform import Rotation

    return (Rotation.from_matrix(R) * Rotation.from_rotvec(global_orient)).as_rotvec()
