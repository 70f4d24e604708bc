"""Run a model over a dataset and compute the monitoring/benchmark metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from handssca.evaluation.metrics import mean_fscore, pck_measures, point_errors, procrustes_align
from handssca.model.handssca import OUTPUT_KEYS


@dataclass
class Predictions:
    """Stacked network outputs and labels over a dataset (numpy, metres / normalised crop coords)."""

    pred: dict[str, np.ndarray] = field(default_factory=dict)
    gt: dict[str, np.ndarray] = field(default_factory=dict)


_GT_KEYS = (
    "joints_cam",
    "vertices_cam",
    "joints_img",
    "K",
    "index",
    "valid_joints_cam",
    "valid_vertices",
    "valid_joints_img",
    "pose",
    "betas",
    "occlusion",
)


@torch.no_grad()
def predict(
    model,
    loader: DataLoader,
    device: torch.device,
    progress: bool = True,
    desc: str = "eval",
    max_batches: int | None = None,
) -> Predictions:
    """Model outputs for every batch of ``loader`` with the matching labels."""
    model.eval()
    out = Predictions({k: [] for k in OUTPUT_KEYS}, {k: [] for k in _GT_KEYS})
    for i, batch in enumerate(tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)):
        if max_batches is not None and i >= max_batches:
            break
        res = model(batch["image"].to(device))
        for k in OUTPUT_KEYS:
            out.pred[k].append(res[k].float().cpu().numpy())
        for k in _GT_KEYS:
            if k in batch:
                v = batch[k]
                out.gt[k].append(v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
    out.pred = {k: np.concatenate(v) for k, v in out.pred.items() if v}
    out.gt = {k: np.concatenate(v) for k, v in out.gt.items() if v}
    return out


def mean_pose_prediction(hand, n: int) -> dict[str, np.ndarray]:
    """The mean-pose predictor: hands_mean pose, zero shape, no global rotation, for n samples."""
    with torch.no_grad():
        dtype = hand.v_template.dtype
        out = hand(
            global_orient=torch.zeros(1, 3, dtype=dtype),
            hand_pose=torch.zeros(1, 45, dtype=dtype),
            betas=torch.zeros(1, 10, dtype=dtype),
        )
    return {k: np.repeat(out[k].double().cpu().numpy(), n, axis=0) for k in ("joints", "vertices")}


def per_sample_errors(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-sample PA-MPJPE / PA-MPVPE / root-relative MPJPE in mm. PA-MPVPE only when topologies match
    and some sample has GT vertices (``valid_vertices``); NaN for the samples without them."""
    out = {}
    pj, gj = pred["joints"].astype(np.float64), gt["joints_cam"].astype(np.float64)
    out["pa_mpjpe_mm"] = point_errors(gj, procrustes_align(gj, pj)).mean(1) * 1000
    out["mpjpe_rr_mm"] = point_errors(gj - gj[:, :1], pj - pj[:, :1]).mean(1) * 1000
    vv = np.asarray(gt.get("valid_vertices", np.ones(len(gj)))) > 0
    if "vertices" in pred and pred["vertices"].shape[1:] == gt["vertices_cam"].shape[1:] and vv.any():
        pv, gv = pred["vertices"][vv].astype(np.float64), gt["vertices_cam"][vv].astype(np.float64)
        out["pa_mpvpe_mm"] = np.full(len(gj), np.nan)
        out["pa_mpvpe_mm"][vv] = point_errors(gv, procrustes_align(gv, pv)).mean(1) * 1000
    return out


def compute_metrics(
    preds: Predictions, hand=None, image_size: int | None = None, fscore: bool = True
) -> dict[str, float]:
    """Monitoring metrics (mm): PA-MPJPE, PA-MPVPE, root-relative MPJPE, F@5/F@15 (PA), AUC, 2D error.

    With ``hand`` also the same metrics of the mean-pose predictor (``*_meanpose``) for reference.
    """
    gt, pred = preds.gt, preds.pred
    valid = gt.get("valid_joints_cam", np.ones(len(gt["joints_cam"]))) > 0
    m: dict[str, float] = {}
    if valid.any():
        g = {k: v[valid] for k, v in gt.items() if len(v) == len(valid)}
        p = {k: v[valid] for k, v in pred.items()}
        errs = per_sample_errors(p, g)
        for k, v in errs.items():
            m[k] = float(np.nanmean(v))
        gj = g["joints_cam"].astype(np.float64)
        aligned = procrustes_align(gj, p["joints"].astype(np.float64))
        m["auc_pa_joints"] = pck_measures(point_errors(gj, aligned), 0.0, 0.05, 100).auc
        if fscore and "pa_mpvpe_mm" in errs:
            vv = ~np.isnan(errs["pa_mpvpe_mm"])  # F-scores over the samples with GT vertices
            gv = g["vertices_cam"][vv].astype(np.float64)
            av = procrustes_align(gv, p["vertices"][vv].astype(np.float64))
            m["f5"] = mean_fscore(gv, av, 0.005)
            m["f15"] = mean_fscore(gv, av, 0.015)
        if hand is not None:
            base = per_sample_errors(mean_pose_prediction(hand, len(gj)), g)
            for k, v in base.items():
                m[f"{k}_meanpose"] = float(np.nanmean(v))
    if image_size is not None and "joints_img" in gt:
        v2 = gt.get("valid_joints_img", np.ones(len(gt["joints_img"]))) > 0
        if v2.any():
            d = np.linalg.norm(pred["joints_img"][v2] - gt["joints_img"][v2], axis=-1) * image_size
            m["joints_img_px"] = float(d.mean())
    return m


def fit_to_landmarks(
    model, dataset, preds: Predictions, progress: bool = True, batch: int = 64, detector=None
) -> tuple[dict[str, np.ndarray], dict]:
    """The hand model fitted to the bundled detector's landmarks on each sample's crop (``handssca evaluate
    --refine landmarks``): the landmark network runs on the crop (the hand box x1.5, as the network sees
    it), then :func:`~handssca.fit.fit_hand` with the crop's camera, pulled weakly towards the network's
    pose and shape. Returns (the predictions with ``joints``, ``vertices`` and ``joints_img`` of the fit where
    it was used, the network's elsewhere; ``{"samples", "landmarks_found", "fitted"}``). A fit is used when
    :func:`~handssca.fit.usable`, as ``handssca predict`` uses it."""
    import copy

    from handssca.detect import HandDetector
    from handssca.fit import FitInit, FitModel, fit_hand, usable
    from handssca.frames import pixels_to_joints_img, project

    detector = HandDetector() if detector is None else detector
    mesh = copy.deepcopy(model.hand).to(device="cpu", dtype=torch.float64)
    fm = FitModel.from_hand(mesh)
    n = len(preds.pred["joints"])
    size = 1
    found = np.zeros(n, dtype=bool)
    kp2d, kp3d = np.zeros((n, 21, 2)), np.zeros((n, 21, 3))
    for i in tqdm(range(n), desc="landmarks", disable=not progress, leave=False, dynamic_ncols=True):
        image = np.asarray(dataset[i]["image"])
        S = image.shape[-1]
        crop = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
        det = detector.landmarks_in_box(crop, (S / 6, S / 6, S / 1.5, S / 1.5))
        if det is not None:
            found[i], kp2d[i], kp3d[i] = True, det.keypoints_2d, det.keypoints_3d
        size = S
    out = {k: np.array(v, copy=True) for k, v in preds.pred.items()}
    used = np.zeros(n, dtype=bool)
    idx = np.nonzero(found)[0]
    for start in range(0, len(idx), batch):
        b = idx[start : start + batch]
        K = preds.gt["K"][b].astype(np.float64)
        init = FitInit(
            preds.pred["pose_aa"][b].astype(np.float64),
            preds.pred["betas"][b].astype(np.float64),
            np.zeros((len(b), 3)),
        )
        res = fit_hand(fm, kp2d[b], K, kp3d[b], init=init)
        ok = usable(res, kp2d[b])[0]
        if not ok.any():
            continue
        with torch.no_grad():
            posed = mesh(
                global_orient=torch.from_numpy(res.pose[ok, :3]),
                hand_pose=torch.from_numpy(res.pose[ok, 3:]),
                betas=torch.from_numpy(res.betas[ok]),
                transl=torch.from_numpy(res.transl[ok]),
            )
        rows = b[ok]
        out["joints"][rows] = posed["joints"].numpy()
        out["vertices"][rows] = posed["vertices"].numpy()
        uv = np.stack([project(j, k) for j, k in zip(posed["joints"].numpy(), K[ok])])
        out["joints_img"][rows] = pixels_to_joints_img(uv, size)
        used[rows] = True
    return out, {"samples": n, "landmarks_found": int(found.sum()), "fitted": int(used.sum())}
