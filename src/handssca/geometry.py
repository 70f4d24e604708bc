"""Small pure geometry functions shared by the data pipeline, evaluation and inference."""

from __future__ import annotations

import numpy as np

from handssca.frames import joints_img_to_pixels, project


def solve_translation(
    points: np.ndarray, pixels: np.ndarray, K: np.ndarray, weights: np.ndarray | None = None, iterations: int = 5
) -> np.ndarray:
    """Translation t (3,) so that points (N,3) + t project through K onto pixels (N,2), least squares.

    A linear solve of the cross-multiplied projection equations gives the start; Gauss-Newton on the
    reprojection error (in pixels) refines it.
    """
    P = np.asarray(points, dtype=np.float64)
    uv = np.asarray(pixels, dtype=np.float64)
    w = np.ones(len(P)) if weights is None else np.asarray(weights, dtype=np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    n = len(P)
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[:n, 0], A[:n, 2], b[:n] = fx, -du, du * P[:, 2] - fx * P[:, 0]
    A[n:, 1], A[n:, 2], b[n:] = fy, -dv, dv * P[:, 2] - fy * P[:, 1]
    sw = np.sqrt(np.concatenate([w, w]))
    t = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)[0]
    if t[2] + P[:, 2].min() <= 1e-3:  # behind the camera: start from a plausible depth instead
        t = np.array([0.0, 0.0, 0.5 - P[:, 2].mean()])
    for _ in range(iterations):
        X = P + t
        z = np.maximum(X[:, 2], 1e-6)
        r = np.concatenate([fx * X[:, 0] / z + cx - uv[:, 0], fy * X[:, 1] / z + cy - uv[:, 1]])
        J = np.zeros((2 * n, 3))
        J[:n, 0], J[:n, 2] = fx / z, -fx * X[:, 0] / z**2
        J[n:, 1], J[n:, 2] = fy / z, -fy * X[:, 1] / z**2
        step = np.linalg.lstsq(J * sw[:, None], -r * sw, rcond=None)[0]
        t = t + step
        if np.abs(step).max() < 1e-10:
            break
    # degenerate 2D input (all joints on one pixel) drives the optimum to infinity: keep a sane depth
    depth = t[2] + P[:, 2].mean()
    if not np.isfinite(depth) or depth > 20.0:
        t = np.array([0.0, 0.0, 20.0 - P[:, 2].mean()]) if not np.all(np.isfinite(t)) else t * (20.0 / depth)
    return t


def translation_from_box(points: np.ndarray, K: np.ndarray, centre_px: np.ndarray, size_px: float) -> np.ndarray:
    """Translation that puts points (N,3) at pixel ``centre_px`` with an image extent of ``size_px``.

    A weak-perspective placement from a box, for when 2D joints are unusable (e.g. all on one pixel).
    """
    P = np.asarray(points, dtype=np.float64)
    c = P.mean(0)
    extent = max(float(np.ptp(P[:, :2], axis=0).max()), 1e-6)
    f = (K[0, 0] + K[1, 1]) / 2
    z = f * extent / max(size_px, 1e-6)
    x = (centre_px[0] - K[0, 2]) * z / K[0, 0]
    y = (centre_px[1] - K[1, 2]) * z / K[1, 1]
    return np.array([x, y, z]) - c


def place_in_crop(joints: np.ndarray, joints_img: np.ndarray, K: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """Camera translation t (3,) of a root-relative prediction in a crop, and how it was found.

    ``joints`` (21, 3) m without translation, ``joints_img`` (21, 2) the predicted normalised crop
    coordinates, ``K`` the crop's intrinsics, ``size`` its side in pixels. The translation that
    reprojects the joints onto their 2D prediction (``"2d_joints"``); when those are degenerate (an
    untrained heatmap head puts them all on one pixel), the hand placed in the crop's centre as large
    as a hand box of the crop (``"box"``).
    """
    uv = joints_img_to_pixels(np.asarray(joints_img, dtype=np.float64), size)
    K = np.asarray(K, dtype=np.float64)
    t = solve_translation(joints, uv, K)
    extent = np.ptp(project(np.asarray(joints, dtype=np.float64) + t, K), axis=0).max()
    if np.isfinite(extent) and extent >= 0.2 * size / 1.5:
        return t, "2d_joints"
    return translation_from_box(joints, K, np.array([(size - 1) / 2] * 2), size / 1.5), "box"
