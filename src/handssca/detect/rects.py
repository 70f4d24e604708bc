"""Rotated hand rectangles in image pixels: from a palm, from landmarks, and the crops they define.

Pixel coordinates follow OpenCV's (and MediaPipe's) sampling convention: pixel (i, j) is sampled at x = j,
y = i; a rectangle's corner maps to the crop's corner (MediaPipe's ``ImageToTensorCalculator``).
``rotation`` (radians) turns the crop's axes clockwise in the image (y down): the crop's "up" is the image
direction (sin r, -cos r), so a hand whose fingers point up has rotation 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Palm keypoints that set a palm rect's rotation (wrist centre -> middle-finger MCP), MediaPipe's choice.
PALM_ROTATION_KEYPOINTS = (0, 2)
#: Palm box -> hand crop: scale 2.6 and shift 0.5 box heights towards the fingers (MediaPipe's options).
PALM_SCALE, PALM_SHIFT_Y = 2.6, -0.5
#: Landmarks -> hand crop for the next video frame: scale 2.0 and shift 0.1 towards the fingers.
LANDMARK_SCALE, LANDMARK_SHIFT_Y = 2.0, -0.1


@dataclass
class RotatedRect:
    """A rectangle in image pixels: centre, size (before rotation) and clockwise rotation (radians)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float

    def corners(self) -> np.ndarray:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left in the crop's own axes."""
        local = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [self.width, self.height]
        return local @ _rot(self.rotation).T + [self.cx, self.cy]


def _rot(r: float) -> np.ndarray:
    c, s = np.cos(r), np.sin(r)
    return np.array([[c, -s], [s, c]])


def normalize_radians(a: float) -> float:
    """The angle in [-pi, pi)."""
    return float(a - 2 * np.pi * np.floor((a + np.pi) / (2 * np.pi)))


def rotation_towards(start: np.ndarray, end: np.ndarray) -> float:
    """Rotation that makes the crop's "up" point from ``start`` to ``end`` (pixels)."""
    return normalize_radians(np.pi / 2 - np.arctan2(-(end[1] - start[1]), end[0] - start[0]))


def transform_rect(rect: RotatedRect, scale: float, shift_y: float) -> RotatedRect:
    """MediaPipe's ``RectTransformationCalculator`` in pixels with ``square_long``: shift along the rect's
    own y axis by ``shift_y`` heights, make it square on its longer side, then scale it."""
    d = _rot(rect.rotation) @ np.array([0.0, rect.height * shift_y])
    side = max(rect.width, rect.height) * scale
    return RotatedRect(rect.cx + d[0], rect.cy + d[1], side, side, rect.rotation)


def rect_from_palm(box: np.ndarray, keypoints: np.ndarray) -> RotatedRect:
    """The hand crop for a palm: box (xmin, ymin, xmax, ymax) and (7, 2) keypoints in image pixels."""
    a, b = PALM_ROTATION_KEYPOINTS
    r = rotation_towards(keypoints[a], keypoints[b])
    rect = RotatedRect((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1], r)
    return transform_rect(rect, PALM_SCALE, PALM_SHIFT_Y)


def rect_from_landmarks(landmarks: np.ndarray) -> RotatedRect:
    """The hand crop that follows a hand whose 21 landmarks (pixels, FreiHAND/MediaPipe order) are known:
    rotation from the wrist to the middle of the index, middle and ring MCPs, the landmarks' extent in that
    rotated frame, then MediaPipe's landmark-to-crop scale and shift."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    towards = (pts[9] + (pts[5] + pts[13]) / 2) / 2
    r = rotation_towards(pts[0], towards)
    R = _rot(r)
    local = pts @ R  # rows: R^T p, the landmarks in the rect's axes
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = R @ ((lo + hi) / 2)
    rect = RotatedRect(centre[0], centre[1], hi[0] - lo[0], hi[1] - lo[1], r)
    return transform_rect(rect, LANDMARK_SCALE, LANDMARK_SHIFT_Y)


def crop_matrix(rect: RotatedRect, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine from image pixels to crop pixels: the rect's corners go to the crop's corners
    (top-left -> (0, 0), bottom-right -> (out_w, out_h))."""
    R = _rot(rect.rotation)
    S = np.diag([out_w / rect.width, out_h / rect.height])
    A = S @ R.T
    t = np.array([out_w / 2, out_h / 2]) - A @ np.array([rect.cx, rect.cy])
    return np.hstack([A, t[:, None]])


def warp_crop(image: np.ndarray, M: np.ndarray, out_w: int, out_h: int, border: str = "constant") -> np.ndarray:
    """(out_h, out_w, 3) float32 in [0, 1]: the uint8 (H, W, 3) image sampled bilinearly through the
    2x3 affine M (image -> crop pixels). ``border``: "constant" (black) or "nearest" (edge pixels)."""
    A = M[:, :2]
    Ainv = np.linalg.inv(A)
    mat = Ainv[::-1, ::-1]  # ndimage indexes (row, col) = (y, x)
    offset = (-Ainv @ M[:, 2])[::-1]
    mode = {"constant": "grid-constant", "nearest": "nearest"}[border]
    chans = [
        ndimage.affine_transform(image[..., ch], mat, offset, (out_h, out_w), np.float32, 1, mode, 0.0)
        for ch in range(image.shape[2])
    ]
    out = np.stack(chans, axis=-1)
    out *= np.float32(1.0 / 255.0)
    return out


def apply_inverse(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Crop pixels (K, 2) back to image pixels through the inverse of the 2x3 affine M."""
    A = M[:, :2]
    return (np.asarray(points, dtype=np.float64) - M[:, 2]) @ np.linalg.inv(A).T
