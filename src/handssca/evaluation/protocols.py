"""The FreiHAND, HO3D and DexYCB evaluation protocols, reproducing the official numbers.

Each ``evaluate_*`` returns a :class:`Report`: a flat dict of scalar metrics (millimetres where the
name ends in ``_mm``) and the PCK curves (thresholds in millimetres) for plotting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handssca.evaluation.metrics import (
    mean_fscore,
    pck_measures,
    point_errors,
    procrustes_align,
    root_align,
    scale_translation_align,
    similarity_from_points,
)


@dataclass
class Report:
    """Scalar metrics and PCK curves of one evaluation."""

    benchmark: str
    num_samples: int
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (mm, pck)


def _mesh_freihand_style(report: Report, gt_xyz, pred_xyz, gt_verts, pred_verts, unit_to_mm: float) -> None:
    """Shared FreiHAND/HO3D loop: unaligned + Procrustes joints and mesh, F@5/F@15 raw and aligned."""
    lo, hi = 0.0, 50.0 / unit_to_mm
    m = report.metrics

    def add(prefix: str, errors: np.ndarray, curve: str) -> None:
        meas = pck_measures(errors, lo, hi, 100)
        m[f"{prefix}_mm"] = meas.epe_mean * unit_to_mm
        m[f"auc_{prefix.replace('mpjpe', 'joints').replace('mpvpe', 'verts')}"] = meas.auc
        report.curves[curve] = (meas.thresholds * unit_to_mm, meas.pck_curve)

    add("mpjpe", point_errors(gt_xyz, pred_xyz), "joints")
    add("pa_mpjpe", point_errors(gt_xyz, procrustes_align(gt_xyz, pred_xyz)), "joints (PA)")
    if pred_verts.shape[1] == gt_verts.shape[1]:
        aligned_verts = procrustes_align(gt_verts, pred_verts)
        add("mpvpe", point_errors(gt_verts, pred_verts), "vertices")
        add("pa_mpvpe", point_errors(gt_verts, aligned_verts), "vertices (PA)")
    else:
        # Not a MANO-topology mesh: no vertex errors; the F-score uses the keypoint similarity
        # (the official ``align_by_trafo`` path, with its scale/centre bug fixed).
        scale, rot, trans = similarity_from_points(gt_xyz, pred_xyz)
        aligned_verts = scale[:, None, None] * pred_verts @ np.swapaxes(rot, 1, 2) + trans[:, None]
        for k in ("mpvpe_mm", "pa_mpvpe_mm", "auc_verts", "auc_pa_verts"):
            m[k] = float("nan")
    for th_mm, name in ((5.0, "f5"), (15.0, "f15")):
        th = th_mm / unit_to_mm
        m[name] = mean_fscore(gt_verts, aligned_verts, th)
        m[f"{name}_unaligned"] = mean_fscore(gt_verts, pred_verts, th)


def evaluate_freihand(pred_xyz: np.ndarray, pred_verts: np.ndarray, gt_xyz: np.ndarray, gt_verts: np.ndarray) -> Report:
    """FreiHAND protocol. All inputs in metres, FreiHAND joint order, same frame (OpenCV camera).

    pred_xyz, gt_xyz: (N,21,3); pred_verts (N,V,3); gt_verts (N,778,3).
    """
    report = Report("freihand", len(gt_xyz))
    _mesh_freihand_style(report, gt_xyz, pred_xyz, gt_verts, pred_verts, 1000.0)
    return report


def evaluate_ho3d(pred_xyz: np.ndarray, pred_verts: np.ndarray, gt_xyz: np.ndarray, gt_verts: np.ndarray) -> Report:
    """HO3D v2/v3 protocol. Inputs as in HO3D's files: metres, HO3D joint order, OpenGL frame.

    Adds ``st_mpjpe_mm`` (scale and translation alignment on wrist and middle MCP, joints 0 and 4).
    """
    report = Report("ho3d", len(gt_xyz))
    _mesh_freihand_style(report, gt_xyz, pred_xyz, gt_verts, pred_verts, 1000.0)
    meas = pck_measures(point_errors(gt_xyz, scale_translation_align(gt_xyz, pred_xyz, 0, 4)), 0.0, 0.05, 100)
    report.metrics["st_mpjpe_mm"] = meas.epe_mean * 1000.0
    report.metrics["auc_st_joints"] = meas.auc
    report.curves["joints (scale+translation)"] = (meas.thresholds * 1000.0, meas.pck_curve)
    return report


def evaluate_dexycb(pred_mm: dict[int, np.ndarray], gt_mm: dict[int, np.ndarray]) -> Report:
    """DexYCB toolkit protocol (``HPEEvaluator``): absolute, root-relative and Procrustes MPJPE and AUC.

    pred_mm, gt_mm: {image_id: (21,3) millimetres}. Every GT id must be predicted; extra ids are ignored.
    """
    missing = sorted(set(gt_mm) - set(pred_mm))
    if missing:
        head = ", ".join(str(i) for i in missing[:10])
        raise ValueError(f"predictions are missing for {len(missing)} ground-truth image ids (first: {head})")
    ids = sorted(gt_mm)
    gt = np.stack([gt_mm[i] for i in ids])
    pred = np.stack([pred_mm[i] for i in ids])
    report = Report("dexycb", len(ids))
    m = report.metrics
    for name, aligned in (
        ("abs", pred),
        ("rr", pred - pred[:, :1] + gt[:, :1]),
        ("pa", procrustes_align(gt, pred)),
    ):
        meas = pck_measures(point_errors(gt, aligned), 0.0, 50.0, 100)
        m[f"{name}_mpjpe_mm"] = meas.epe_mean
        m[f"auc_{name}"] = meas.auc
        report.curves[name] = (meas.thresholds, meas.pck_curve)
    return report


__all__ = ["Report", "evaluate_dexycb", "evaluate_freihand", "evaluate_ho3d", "root_align"]
