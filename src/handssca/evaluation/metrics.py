"""The official hand-pose metrics as pure, batched numpy functions.

Definitions follow the FreiHAND/HO3D ``eval_util.py`` and the DexYCB toolkit exactly (see
docs/evaluation.md): Procrustes alignment that allows reflections, PCK with an inclusive ``<=``
over ``linspace(lo, hi, steps)``, AUC by the trapezoid rule per point then averaged over points, and
F-scores with a strict ``<`` averaged over samples. Arrays are (N, K, 3); units are whatever the
inputs use (metres for FreiHAND/HO3D, millimetres for DexYCB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape or gt.ndim != 3 or gt.shape[-1] != 3:
        raise ValueError(f"expected gt and pred of the same shape (N, K, 3); got {gt.shape} and {pred.shape}")
    return gt, pred


def root_align(gt: np.ndarray, pred: np.ndarray, root: int = 0) -> np.ndarray:
    """Translate each prediction so that its point ``root`` sits on the ground truth's.

    gt, pred: (N, K, 3). Returns the aligned pred (N, K, 3).
    """
    gt, pred = _check_pair(gt, pred)
    return pred - pred[:, root : root + 1] + gt[:, root : root + 1]


def scale_translation_align(gt: np.ndarray, pred: np.ndarray, root: int = 0, ref: int = 4) -> np.ndarray:
    """HO3D's ``align_sc_tr``: scale pred so |pred[ref]-pred[root]| matches gt's, then move roots together.

    With HO3D joint order the defaults (root 0 = wrist, ref 4 = middle MCP) are the official ones; in
    FreiHAND order use ``ref=9``. A prediction whose reference bone has zero length is not rescaled
    (as the official ``if s > 0`` guard). gt, pred: (N, K, 3). Returns (N, K, 3).
    """
    gt, pred = _check_pair(gt, pred)
    s_pred = np.linalg.norm(pred[:, ref] - pred[:, root], axis=-1)
    s_gt = np.linalg.norm(gt[:, ref] - gt[:, root], axis=-1)
    scale = np.where(s_pred > 0, 1.0 / np.where(s_pred > 0, s_pred, 1.0), 1.0) * s_gt
    out = pred * scale[:, None, None]
    return out - out[:, root : root + 1] + gt[:, root : root + 1]


def procrustes_align(gt: np.ndarray, pred: np.ndarray, allow_reflection: bool = True) -> np.ndarray:
    """Similarity transform (rotation, isotropic scale, translation) of pred onto gt, least squares.

    With ``allow_reflection=True`` this is exactly the official ``align_w_scale`` (scipy's
    ``orthogonal_procrustes``, no determinant check, 1e-8 in the norms), so a mirrored prediction
    aligns with near-zero error. ``allow_reflection=False`` forces a proper rotation (Umeyama, as
    HandOccNet's ``rigid_align``), for training-time monitoring. gt, pred: (N, K, 3) -> (N, K, 3).
    """
    scale, rot, trans = similarity_from_points(gt, pred, allow_reflection)
    return scale[:, None, None] * np.asarray(pred, dtype=np.float64) @ np.swapaxes(rot, 1, 2) + trans[:, None]


def point_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Euclidean distance per sample and point. gt, pred: (N, K, 3) -> (N, K)."""
    gt, pred = _check_pair(gt, pred)
    return np.linalg.norm(gt - pred, axis=-1)


@dataclass(frozen=True)
class Measures:
    """The official ``EvalUtil.get_measures`` outputs (units as the inputs)."""

    epe_mean: float
    epe_median: float  # mean over points of the per-point median, as the official code
    auc: float
    pck_curve: np.ndarray  # (steps,)
    thresholds: np.ndarray  # (steps,)


def pck_measures(errors: np.ndarray, lo: float = 0.0, hi: float = 0.05, steps: int = 100) -> Measures:
    """PCK curve, AUC, mean and median error exactly as the official ``get_measures``.

    errors: (N, K) per-sample, per-point distances. Thresholds are ``linspace(lo, hi, steps)``
    (both ends included), PCK uses ``<=``, each point's AUC is the trapezoid integral divided by
    ``hi - lo``, and the results are averaged over the K points.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2 or errors.shape[0] == 0:
        raise ValueError(f"expected errors of shape (N>0, K); got {errors.shape}")
    thresholds = np.linspace(lo, hi, steps)
    pck = (errors[:, :, None] <= thresholds[None, None, :]).mean(axis=0)  # (K, steps)
    norm = np.trapezoid(np.ones_like(thresholds), thresholds)
    auc = np.trapezoid(pck, thresholds, axis=1) / norm
    return Measures(
        epe_mean=float(errors.mean(axis=0).mean()),
        epe_median=float(np.median(errors, axis=0).mean()),
        auc=float(auc.mean()),
        pck_curve=pck.mean(axis=0),
        thresholds=thresholds,
    )


def fscore(gt_points: np.ndarray, pred_points: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """Official per-sample F-score between two point sets (K1, 3) and (K2, 3).

    Returns (F, official "precision", official "recall"), where precision = fraction of GT points
    whose nearest prediction is closer than ``threshold`` (strict ``<``) and recall = fraction of
    predicted points whose nearest GT point is; F = 2PR/(P+R), or 0 when P+R = 0.
    """
    gt_points = np.asarray(gt_points, dtype=np.float64)
    pred_points = np.asarray(pred_points, dtype=np.float64)
    d1, _ = cKDTree(pred_points).query(gt_points, k=1)
    d2, _ = cKDTree(gt_points).query(pred_points, k=1)
    precision = float(np.mean(d1 < threshold))
    recall = float(np.mean(d2 < threshold))
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f, precision, recall


def mean_fscore(gt: np.ndarray, pred: np.ndarray, threshold: float) -> float:
    """Mean over samples of the per-sample F-score. gt: (N, K1, 3), pred: (N, K2, 3)."""
    if len(gt) != len(pred) or len(gt) == 0:
        raise ValueError(f"expected the same non-zero number of samples; got {len(gt)} and {len(pred)}")
    return float(np.mean([fscore(g, p, threshold)[0] for g, p in zip(gt, pred)]))


def similarity_from_points(
    gt: np.ndarray, pred: np.ndarray, allow_reflection: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The official Procrustes similarity as (scale (N,), rotation (N,3,3), translation (N,3)).

    ``pred_aligned = scale * pred @ R.T + t`` is :func:`procrustes_align`; also used to carry a
    keypoint alignment over to a mesh with a different vertex count. ``allow_reflection=False``
    forces a proper rotation (Umeyama).
    """
    gt, pred = _check_pair(gt, pred)
    t1 = gt.mean(axis=1)
    t2 = pred.mean(axis=1)
    g = gt - t1[:, None]
    p = pred - t2[:, None]
    s1 = np.linalg.norm(g, axis=(1, 2)) + 1e-8
    s2 = np.linalg.norm(p, axis=(1, 2)) + 1e-8
    u, sv, vt = np.linalg.svd(np.swapaxes(g / s1[:, None, None], 1, 2) @ (p / s2[:, None, None]))  # G^T P = U S V^T
    if not allow_reflection:
        d = np.sign(np.linalg.det(u @ vt))
        d = np.where(d == 0, 1.0, d)
        u = u.copy()
        u[:, :, -1] *= d[:, None]
        sv = sv.copy()
        sv[:, -1] *= d
    rot = u @ vt  # maps G onto P: G R ~ P
    scale = sv.sum(axis=1) * s1 / s2
    trans = t1 - scale[:, None] * np.einsum("nij,nj->ni", rot, t2)
    return scale, rot, trans


def pck_curve_mm(
    gt: np.ndarray, aligned: np.ndarray, max_m: float = 0.05, steps: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds in mm, fraction of points within each) over 0..``max_m`` metres: the curves of the
    reports' PCK plots. gt, aligned: (N, K, 3) metres."""
    meas = pck_measures(point_errors(gt, aligned), 0.0, max_m, steps)
    return meas.thresholds * 1000.0, meas.pck_curve
