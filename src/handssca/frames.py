"""Camera frames and left/right mirroring in one place, for numpy arrays and torch tensors.

Conventions: OpenCV camera frame (x right, y down, z forward), metres; pixel centres at integer
coordinates. The OpenGL camera frame (HO3D's files) differs by ``diag(1, -1, -1)``, a rotation by
180 degrees about x that is its own inverse. A left hand is the mirror image of a right hand across
the camera's x = 0 plane; mirroring an image maps column u to ``W - 1 - u``. Every function here is
its own inverse (apply it twice to get the input back). The normalised crop coordinates of the
soft-argmax grid put cell i's centre at ``(i + 0.5) / S``.

This module imports nothing from the package: every layer may use it.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

#: Per-point factor between the OpenGL and the OpenCV camera frames (either way).
OPENGL_TO_OPENCV = (1.0, -1.0, -1.0)
#: Per-point factor of the x-mirror (left <-> right), and per-joint axis-angle factor of a mirrored pose.
MIRROR_POINT = (-1.0, 1.0, 1.0)
MIRROR_AXIS_ANGLE = (1.0, -1.0, -1.0)


def _factor(x: Array, values: tuple[float, ...]) -> Array:
    if isinstance(x, torch.Tensor):
        return x.new_tensor(values)
    return np.asarray(values, dtype=np.result_type(np.asarray(x).dtype, np.float32))


def opengl_to_opencv(points: Array) -> Array:
    """Points (..., 3) from the OpenGL to the OpenCV camera frame, or back."""
    return points * _factor(points, OPENGL_TO_OPENCV)


def mirror_points(points: Array) -> Array:
    """Points or translations (..., 3): x -> -x."""
    return points * _factor(points, MIRROR_POINT)


def mirror_pose(pose: Array) -> Array:
    """Per-joint axis-angle of the mirrored hand, (x, y, z) -> (x, -y, -z); pose (..., 3K) or (..., K, 3)."""
    flip = _factor(pose, MIRROR_AXIS_ANGLE)
    if pose.shape[-1] == 3:
        return pose * flip
    return (pose.reshape(*pose.shape[:-1], -1, 3) * flip).reshape(pose.shape)


def mirror_faces(faces: Array) -> Array:
    """Triangles (F, 3) re-wound so that a mirrored mesh keeps outward normals."""
    return faces[:, [0, 2, 1]]


def mirror_pixels(pixels: Array, width: int) -> Array:
    """2D points (..., 2) of an image flipped left-right: u -> W - 1 - u."""
    out = pixels.clone() if isinstance(pixels, torch.Tensor) else np.array(pixels, dtype=np.float64)
    out[..., 0] = width - 1 - out[..., 0]
    return out


def mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    """(x, y, w, h) box of an image flipped left-right: its centre moves as the points, u -> W - 1 - u."""
    return np.array([width - 1 - box[0] - box[2], box[1], box[2], box[3]], dtype=np.float64)


def whole_image_box(width: int, height: int) -> np.ndarray:
    """(x, y, w, h) box of a whole W x H image: its centre is the image's, ((W - 1) / 2, (H - 1) / 2), so
    it is its own mirror and a crop of it into W x H pixels is the identity."""
    return np.array([-0.5, -0.5, float(width), float(height)])


def pixel_scale(sx: float, sy: float) -> np.ndarray:
    """(3, 3) map from an image's pixels to those of the same view with ``sx`` x ``sy`` times larger pixels
    (pixel centres at integers, the image's edge -0.5 kept): p -> (p + 0.5) / s - 0.5."""
    return np.array([[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]])


def sampled_region(lo, hi, width: int, height: int, clip: bool = True) -> tuple[int, int, int, int]:
    """The pixels ``[x0, x1) x [y0, y1)`` that bilinear sampling at points between ``lo`` (x, y) and ``hi``
    reads, with a margin (2 pixels before, 3 after): the part of an image an affine crop needs.
    ``clip``: limited to the width x height image (then empty when x1 <= x0 or y1 <= y0)."""
    x0, y0 = int(np.floor(lo[0])) - 2, int(np.floor(lo[1])) - 2
    x1, y1 = int(np.ceil(hi[0])) + 3, int(np.ceil(hi[1])) + 3
    if clip:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    return x0, y0, x1, y1


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """K (3, 3) of the flipped image (principal point cx -> W - 1 - cx): it projects mirrored points
    onto mirrored pixels."""
    out = np.array(K, dtype=np.float64)
    out[0, 2] = width - 1 - out[0, 2]
    return out


def mirror_image(image: np.ndarray) -> np.ndarray:
    """An (H, W, ...) image flipped left-right (a contiguous copy)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (N, 3) -> pixels (N, 2)."""
    p = np.asarray(points) @ np.asarray(K).T
    return p[:, :2] / p[:, 2:3]


def joints_img_to_pixels(joints_img: np.ndarray, size: int) -> np.ndarray:
    """Normalised crop coordinates (cell i's centre at (i + 0.5) / S) -> pixels of an S x S crop."""
    return np.asarray(joints_img) * size - 0.5


def pixels_to_joints_img(pixels: np.ndarray, size: int) -> np.ndarray:
    """Pixels of an S x S crop -> normalised crop coordinates: the inverse of :func:`joints_img_to_pixels`."""
    return (np.asarray(pixels) + 0.5) / size
