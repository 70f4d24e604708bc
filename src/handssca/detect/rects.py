"""Rotated hand rectangles in image pixels: from a palm, from landmarks, and the crops they define.

Pixel coordinates follow OpenCV's (and MediaPipe's) sampling convention: pixel (i, j) is sampled at x = j,
y = i; a rectangle's corner maps to the crop's corner (MediaPipe's ``ImageToTensorCalculator``).
``rotation`` (radians) turns the crop's axes clockwise in the image (y down): the crop's "up" is the image
direction (sin r, -cos r), so a hand whose fingers point up has rotation 0.
"""

from __future__ import annotations

import numpy as np

from handssca.frames import sampled_region
from handssca.results import RotatedRect

#: Palm keypoints that set a palm rect's rotation (wrist centre -> middle-finger MCP), MediaPipe's choice.
PALM_ROTATION_KEYPOINTS = (0, 2)
#: Palm box -> hand crop: scale 2.6 and shift 0.5 box heights towards the fingers (MediaPipe's options).
PALM_SCALE, PALM_SHIFT_Y = 2.6, -0.5
#: Landmarks -> hand crop for the next video frame: scale 2.0 and shift 0.1 towards the fingers.
LANDMARK_SCALE, LANDMARK_SHIFT_Y = 2.0, -0.1


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


#: The landmarks whose extent sets the tracking crop (MediaPipe's ``HandLandmarksToRectCalculator`` uses
#: the wrist, the thumb's first three and the first two of each finger: no fingertips).
TRACKING_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def rect_from_landmarks(landmarks: np.ndarray) -> RotatedRect:
    """The hand crop that follows a hand whose 21 landmarks (pixels, FreiHAND/MediaPipe order) are known,
    as MediaPipe's ``HandLandmarksToRectCalculator``: rotation from the wrist to the middle of the index,
    middle and ring MCPs, the extent of :data:`TRACKING_LANDMARKS` in that rotated frame, then the
    landmark-to-crop scale and shift."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    towards = (pts[9] + (pts[5] + pts[13]) / 2) / 2
    r = rotation_towards(pts[0], towards)
    R = _rot(r)
    local = pts[list(TRACKING_LANDMARKS)] @ R  # rows: R^T p, the landmarks in the rect's axes
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
    2x3 affine M (image -> crop pixels), into uint8 as OpenCV's ``warpAffine`` does (no antialiasing).
    ``border``: "constant" (black) or "nearest" (edge pixels repeated).

    Only the part of the image the crop covers is read (Pillow's affine transform on that region)."""
    from PIL import Image

    A = M[:, :2]
    Ai = np.linalg.inv(A)
    ti = -Ai @ M[:, 2]  # crop pixel q -> image pixel Ai q + ti
    h, w = image.shape[:2]
    corners = np.array([[0, 0], [out_w, 0], [0, out_h], [out_w, out_h]], dtype=np.float64) - 0.5
    src = corners @ Ai.T + ti
    x0, y0, x1, y1 = sampled_region(src.min(axis=0), src.max(axis=0), w, h, clip=border == "constant")
    if border == "nearest" and x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:  # inside the image: a view
        region = image[y0:y1, x0:x1]
    elif border == "nearest":  # the region with edge pixels repeated beyond the image
        xs, ys = np.clip(np.arange(x0, x1), 0, w - 1), np.clip(np.arange(y0, y1), 0, h - 1)
        region = image[ys[:, None], xs[None, :]]
    elif border == "constant":  # the region inside the image; Pillow fills the rest with black
        if x1 <= x0 or y1 <= y0:
            return np.zeros((out_h, out_w, 3), np.float32)
        region = image[y0:y1, x0:x1]
    else:
        raise ValueError(f"border: expected 'constant' or 'nearest'; got {border!r}")
    # Pillow maps output pixel centres (q + 0.5) to input coordinates whose pixel centres are at p + 0.5
    t = ti - np.array([x0, y0]) + 0.5 - Ai @ np.array([0.5, 0.5])
    data = (Ai[0, 0], Ai[0, 1], t[0], Ai[1, 0], Ai[1, 1], t[1])
    pil = Image.fromarray(np.ascontiguousarray(region[..., :3]))
    out = pil.transform((out_w, out_h), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(out, dtype=np.float32) * np.float32(1.0 / 255.0)


def apply_inverse(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Crop pixels (K, 2) back to image pixels through the inverse of the 2x3 affine M."""
    A = M[:, :2]
    return (np.asarray(points, dtype=np.float64) - M[:, 2]) @ np.linalg.inv(A).T
