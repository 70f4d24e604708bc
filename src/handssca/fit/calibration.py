"""Calibrating a :class:`~handssca.fit.table.LandmarkTable` from detections of hands whose truth is known.

For each landmark two offsets (carried by its bone, rest-pose frame) that best explain where the detector
put it: in 2D (through the camera, in metres at the hand's depth, by least squares over all samples), then
in 3D, after the similarity that best carries each sample's 3D landmarks onto its 2D-calibrated points (the
3D landmarks' position, turn and scale are the detector's own: the 2D points fix them); then each
landmark's weights from its remaining scatter: ``(1 cm)^2 / variance`` per coordinate, so that the 2D and 3D
terms of the fit are in the same units. The 2D offsets take a few Gauss-Newton rounds (the projection is
not linear); the 3D ones one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handssca.fit.keypoints import KEYPOINT_BONE, KeypointModel, pose_keypoints, rodrigues

#: Weights are (this many metres)^2 / variance: a landmark scattered by 1 cm per coordinate weighs 1.
WEIGHT_UNIT_M = 0.01
#: A ridge on the 2D offsets (relative to one sample's weight), only to keep the solve proper.
RIDGE = 1e-4


@dataclass
class CalibrationSamples:
    """N detected hands and their truth: ``pose`` (N, 48), ``betas`` (N, S), ``transl`` (N, 3) of the hand model
    (right hands); ``K`` (N, 3, 3); the detector's ``keypoints_2d`` (N, 21, 2) pixels and ``keypoints_3d``
    (N, 21, 3) metres (image axes)."""

    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    K: np.ndarray
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray

    def __len__(self) -> int:
        return len(self.pose)


def ray_rotation(K: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, 3, 3) the rotation turning the optical axis onto the ray through each hand's mean 2D point
    ``uv`` (N, 21, 2): image-axis landmarks seen along that ray, turned into the camera frame."""
    centre = uv.mean(1)
    ray = np.einsum("bij,bj->bi", np.linalg.inv(K), np.concatenate([centre, np.ones((len(uv), 1))], 1))
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, ray)
    s = np.linalg.norm(axis, axis=1)
    angle = np.arctan2(s, ray[:, 2])
    axis = axis / np.maximum(s, 1e-12)[:, None]
    return rodrigues(axis * angle[:, None])


def similarity_align(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """X (N, P, 3) moved onto Y (N, P, 3) by the best similarity of each set (Umeyama, no reflection)."""
    mx, my = X.mean(1, keepdims=True), Y.mean(1, keepdims=True)
    x, y = X - mx, Y - my
    U, S, Vt = np.linalg.svd(np.einsum("npi,npj->nij", y, x))
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros((len(X), 3))
    D[:] = 1.0
    D[:, 2] = d
    R = U @ (D[:, :, None] * Vt)
    s = (S * D).sum(1) / np.maximum((x**2).sum((1, 2)), 1e-18)
    return s[:, None, None] * np.einsum("nij,npj->npi", R, x) + my


def calibrate_table(model: KeypointModel, samples: CalibrationSamples, rounds: int = 4, source: str = "calibrated"):
    """The :class:`~handssca.fit.table.LandmarkTable` of ``samples`` for ``model`` (see the module docstring).
    Samples whose 2D keypoints are further from the truth than 3x the median are left out (gross misses)."""
    from handssca.fit.table import LandmarkTable

    n = len(samples)
    posed = pose_keypoints(model, samples.pose, samples.betas, samples.transl)
    P = posed.keypoints  # (N, 21, 3) camera frame
    Wb = posed.world[:, KEYPOINT_BONE]  # (N, 21, 3, 3)
    K = samples.K
    X = np.einsum("nij,npj->npi", ray_rotation(K, samples.keypoints_2d), samples.keypoints_3d)
    proj = np.einsum("nij,npj->npi", K, P)
    miss = np.linalg.norm(proj[..., :2] / proj[..., 2:] - samples.keypoints_2d, axis=-1).mean(1)
    keep = miss <= 3 * np.median(miss)
    f = (K[:, 0, 0] + K[:, 1, 1]) / 2
    d2 = np.zeros((21, 3))
    # 2D: the offset whose projection best explains each keypoint, in metres at its depth (Gauss-Newton on the
    # linearised projection; the depth one view cannot see is seen from the others; a tiny ridge keeps it proper)
    for _ in range(max(rounds, 1)):
        Q2 = P + np.einsum("npij,pj->npi", Wb, d2)
        z = Q2[..., 2]
        q = np.einsum("nij,npj->npi", K, Q2)
        e = (samples.keypoints_2d - q[..., :2] / q[..., 2:]) * (z / f[:, None])[..., None]
        Jp = np.zeros((n, 21, 2, 3))
        Jp[..., 0, 0] = Jp[..., 1, 1] = 1.0
        Jp[..., 0, 2] = -Q2[..., 0] / z
        Jp[..., 1, 2] = -Q2[..., 1] / z
        A = np.einsum("npij,npjk->npik", Jp, Wb)[keep]  # (n, 21, 2, 3) metres of 2D per unit offset
        lhs = np.einsum("npij,npik->pjk", A, A) + RIDGE * keep.sum() * np.eye(3)
        rhs = np.einsum("npij,npi->pj", A, e[keep]) - RIDGE * keep.sum() * d2
        d2 = d2 + np.linalg.solve(lhs, rhs[..., None])[..., 0]
    # 3D: the landmarks moved by a similarity onto the 2D-calibrated points (the 3D landmarks carry no
    # position, turn or scale of their own: the 2D points fix them); each offset the mean of what is left, in
    # its bone's frame
    Q2 = P + np.einsum("npij,pj->npi", Wb, d2)
    aligned = similarity_align(X, Q2)
    d3 = np.einsum("npji,npj->pi", Wb[keep], (aligned - P)[keep]) / keep.sum()
    Q3 = P + np.einsum("npij,pj->npi", Wb, d3)
    e3 = similarity_align(X, Q3) - Q3
    Q2 = P + np.einsum("npij,pj->npi", Wb, d2)
    q = np.einsum("nij,npj->npi", K, Q2)
    e2 = (samples.keypoints_2d - q[..., :2] / q[..., 2:]) * (Q2[..., 2] / f[:, None])[..., None]
    var3 = (e3[keep] ** 2).sum(-1).mean(0) / 3
    var2 = (e2[keep] ** 2).sum(-1).mean(0) / 2
    w3, w2 = WEIGHT_UNIT_M**2 / var3, WEIGHT_UNIT_M**2 / var2
    table = LandmarkTable(d3, w2, w3, f"{source}: {int(keep.sum())} of {n} detections", d2)
    stats = {
        "samples": int(n),
        "used": int(keep.sum()),
        "rms_3d_mm": (np.sqrt(var3 * 3) * 1000).tolist(),
        "rms_2d_mm_at_depth": (np.sqrt(var2 * 2) * 1000).tolist(),
    }
    return table, stats
