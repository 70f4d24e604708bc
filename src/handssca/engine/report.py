"""``handssca evaluate``: metrics, per-sample CSV, PCK plot, best/worst pictures and submission files."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np

from handssca.config import Config, apply_overrides, build_config, load_config
from handssca.data.factory import build_dataset
from handssca.data.loader import make_loader
from handssca.engine.evaluate import Predictions, compute_metrics, fit_to_landmarks, per_sample_errors, predict
from handssca.environment import resolve_device
from handssca.evaluation.metrics import pck_curve_mm, procrustes_align
from handssca.evaluation.submissions import write_submission
from handssca.model.checkpoint import model_from_checkpoint, read_checkpoint
from handssca.pictures import best_worst, pck_figure, save_figure


def _config_for(ckpt: dict, config: str | None, overrides: list[str]) -> Config:
    stored = copy.deepcopy(ckpt.get("config", {}))  # overrides must not reach the checkpoint's model config
    if config is not None:
        cfg = load_config(config, overrides)
        cfg.model = build_config({"model": stored["model"]}).model  # the weights decide the architecture
        return cfg
    data = {k: v for k, v in stored.items() if k in ("model", "data", "train", "eval", "name")}
    return build_config(apply_overrides(data, overrides), "checkpoint config")


def evaluate_checkpoint(
    checkpoint: str,
    config: str | None = None,
    split: str | None = None,
    out: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    hand_model: str | None = None,
    progress: bool = True,
    device: str = "auto",
    refine: str | None = None,
) -> dict:
    """Evaluate ``checkpoint`` on a split and write the report files; returns metrics, folder and files.

    The network runs with the hand model it was trained with (:func:`model_from_checkpoint`):
    ``hand_model`` (or a ``model.hand_model=`` override) is that model's file, checked against the
    checkpoint's record; without one, the file at the checkpoint's recorded path.

    ``refine="landmarks"``: also the hand model fitted to the bundled detector's landmarks on each crop
    (:func:`~handssca.engine.evaluate.fit_to_landmarks`), its metrics beside the network's
    (``metrics["landmark_fit"]``, ``metrics.json`` and ``per_sample.csv``); the submission file stays the
    network's, as the benchmarks define it."""
    if refine not in (None, "landmarks"):
        raise ValueError(f"refine (--refine): expected 'landmarks' or 'none'; got {refine!r}")
    ckpt = read_checkpoint(checkpoint)
    cfg = _config_for(ckpt, config, list(overrides))
    recorded = ckpt["config"]["model"].get("hand_model")
    if hand_model is None and cfg.model.hand_model != recorded:
        hand_model = cfg.model.hand_model  # an override of model.hand_model names the file to use
    split = split or cfg.eval.split
    dev = resolve_device(device)
    model = model_from_checkpoint(ckpt, checkpoint, hand_model).to(dev)  # the file is read once
    cfg.model.hand_model = model.config.hand_model  # the file used (MANO_LEFT.pkl is looked for beside it)
    dataset = build_dataset(cfg, getattr(cfg.data, f"{split}_split", split), train=False, hand_model=model.hand)
    loader = make_loader(dataset, cfg.eval.batch_size, None, cfg.data.num_workers)
    preds = predict(model, loader, dev, progress, desc=f"evaluate {split}")
    metrics = compute_metrics(preds, model.hand, cfg.model.input_size)
    fitted = None
    if refine == "landmarks":
        fitted, info = fit_to_landmarks(model, dataset, preds, progress)
        metrics["landmark_fit"] = {**info, **compute_metrics(Predictions(fitted, preds.gt), None, cfg.model.input_size)}
    out_dir = Path(out) if out else Path(checkpoint).resolve().parent / f"eval_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    (out_dir / "metrics.json").write_text(
        json.dumps(
            {"checkpoint": str(checkpoint), "split": split, "samples": len(preds.pred["joints"]), **metrics}, indent=2
        )
    )
    files.append(out_dir / "metrics.json")
    if "joints_cam" in preds.gt and preds.gt.get("valid_joints_cam", np.ones(1)).any():
        errs = per_sample_errors(preds.pred, preds.gt)
        size = cfg.model.input_size
        px = np.linalg.norm(preds.pred["joints_img"] - preds.gt["joints_img"], axis=-1).mean(1) * size
        columns = {**{k: errs[k] for k in errs}, "joints_img_px": px}
        if fitted is not None:
            fit_errs = per_sample_errors(fitted, preds.gt)
            columns.update({f"{k}_fit": v for k, v in fit_errs.items()})
            columns["joints_img_px_fit"] = (
                np.linalg.norm(fitted["joints_img"] - preds.gt["joints_img"], axis=-1).mean(1) * size
            )
        with open(out_dir / "per_sample.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", *columns])
            for i in range(len(px)):
                w.writerow([int(preds.gt["index"][i]), *(f"{v[i]:.3f}" for v in columns.values())])
        files.append(out_dir / "per_sample.csv")
        gj = preds.gt["joints_cam"].astype(np.float64)
        curves = {}
        for name, aligned in (
            ("PA joints", procrustes_align(gj, preds.pred["joints"].astype(np.float64))),
            ("root-relative joints", preds.pred["joints"] - preds.pred["joints"][:, :1] + gj[:, :1]),
        ):
            curves[name] = pck_curve_mm(gj, aligned)
        files.append(save_figure(pck_figure(curves, title=f"{cfg.data.dataset} {split}"), out_dir / "pck.png"))
        files.append(
            save_figure(best_worst(dataset, preds, errs["pa_mpjpe_mm"], model.hand.faces), out_dir / "best_worst.png")
        )
    files.extend(write_submission(cfg.data.dataset, dataset, preds, out_dir, cfg.model.input_size))
    return {"metrics": metrics, "out_dir": out_dir, "files": files}
