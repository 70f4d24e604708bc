"""Calibrate where the detector's 21 landmarks sit on a hand model, on synthetic renders whose truth is known.

    python scripts/calibrate_landmarks.py detect [--count 400] [--hand-model MANO_RIGHT.pkl]
    python scripts/calibrate_landmarks.py table            # writes the landmark table from the detections
    python scripts/calibrate_landmarks.py evaluate [--checkpoint runs/demo/last.pt] [--count 200]

``detect`` renders photo-like pictures of the package's synthetic hands (``SyntheticHands`` with a forearm,
no occluders, the palm or the back towards the camera within 40 degrees; split "val"), runs the bundled
detector on each whole picture and keeps, for every hand it finds, its landmarks and the truth
(``scripts/data/landmark_calibration_<model>.npz``); it prints the found rate, and the rate on occluded
renders (the dataset's own settings). ``table`` turns those detections into the landmark table
(``src/handssca/assets/landmark_table_default_hand.json`` for the default hand;
:func:`handssca.fit.calibration.calibrate_table`): ``tests/fit/test_calibration.py`` checks that the shipped
table is what this step gives. ``evaluate`` runs the detector on the "test" split and prints, per
hand found, the PA-MPJPE of the detector's 3D landmarks, of the fitted mesh's joints and of the network's
(a checkpoint given), and the 2D errors of the keypoints and of the fit: the table in ``docs/fitting.md``.
``crops --checkpoint ...`` measures what the fit's usability thresholds rest on (``docs/fitting.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: The renders the table is calibrated on (photo-like: a forearm, no occluders, the palm or back facing the camera).
SETTINGS = dict(split="val", seed=0, image_size=256, max_occluders=0, max_tilt_deg=40.0, forearm=True)
#: A detection belongs to the rendered hand when its keypoints are on average within this fraction of the
#: hand's 2D size from the true joints.
MATCH = 0.3


def data_file(hand_model: str | None) -> Path:
    name = "default_hand" if hand_model is None else Path(hand_model).stem.lower()
    return ROOT / "scripts" / "data" / f"landmark_calibration_{name}.npz"


def table_file(hand_model: str | None) -> Path:
    if hand_model is None:
        return ROOT / "src" / "handssca" / "assets" / "landmark_table_default_hand.json"
    return ROOT / "scripts" / "data" / f"landmark_table_{Path(hand_model).stem.lower()}.json"


def detect_renders(count: int, hand_model: str | None = None, start: int = 0, **overrides) -> tuple[dict, int]:
    """(arrays of the hands found among renders ``start .. start + count - 1``, renders looked at)."""
    from handssca.data.synthetic import SyntheticHands
    from handssca.detect import HandDetector
    from handssca.frames import project

    settings = {**SETTINGS, **overrides}
    split = settings.pop("split")
    ds = SyntheticHands(split, start + count, hand_model=hand_model, **settings)
    detector = HandDetector()
    keys = ("index", "pose", "betas", "transl", "K", "keypoints_2d", "keypoints_3d", "joints_2d")
    out: dict[str, list] = {k: [] for k in keys}
    for i in range(start, start + count):
        r = ds.render_original(i)
        image = (np.clip(r["image"], 0, 1) * 255).round().astype(np.uint8)
        truth = project(r["joints_cam"], r["K"])
        size = np.ptp(truth, axis=0).max()
        best = None
        for hand in detector(image):
            err = np.linalg.norm(hand.keypoints_2d - truth, axis=1).mean()
            if err < MATCH * size and (best is None or err < best[0]):
                best = (err, hand)
        if best is None:
            continue
        hand = best[1]
        # the scene's MANO translation: joints_cam = forward(pose, betas) + transl
        vals = (i, r["pose"], r["betas"], r["transl"], r["K"], hand.keypoints_2d, hand.keypoints_3d, truth)
        for k, v in zip(keys, vals):
            out[k].append(np.asarray(v, dtype=np.float64))
    return {k: np.stack(v) if v else np.zeros((0,)) for k, v in out.items()}, count


def _cmd_detect(args) -> None:
    t = time.perf_counter()
    found, n = detect_renders(args.count, args.hand_model)
    path = data_file(args.hand_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, settings=json.dumps({**SETTINGS, "count": n}), **found)
    print(
        f"{len(found['index'])} of {n} unoccluded renders with a forearm found ({len(found['index']) / n:.0%}), "
        f"{time.perf_counter() - t:.0f} s; wrote {path}"
    )
    if args.occluded:
        occ, m = detect_renders(args.occluded, args.hand_model, max_occluders=3)
        print(
            f"with occluders (up to 3, the dataset's): {len(occ['index'])} of {m} found ({len(occ['index']) / m:.0%})"
        )
        any_way, k = detect_renders(args.occluded, args.hand_model, max_tilt_deg=180.0)
        print(f"any orientation, no occluders: {len(any_way['index'])} of {k} found ({len(any_way['index']) / k:.0%})")


def load_samples(path: Path):
    from handssca.fit.calibration import CalibrationSamples

    with np.load(path) as z:
        return CalibrationSamples(z["pose"], z["betas"], z["transl"], z["K"], z["keypoints_2d"], z["keypoints_3d"])


def make_table(hand_model: str | None = None, path: Path | None = None):
    """The landmark table that the saved detections give (what ``table`` writes)."""
    import torch

    from handssca.fit.calibration import calibrate_table
    from handssca.fit.keypoints import KeypointModel
    from handssca.hand import HandModel

    hand = HandModel.load(hand_model, dtype=torch.float64)
    path = data_file(hand_model) if path is None else path
    name = "default hand" if hand_model is None else Path(hand_model).name
    return calibrate_table(KeypointModel.from_hand(hand), load_samples(path), source=f"{name}, {path.name}")


def _cmd_table(args) -> None:
    table, stats = make_table(args.hand_model)
    out = table_file(args.hand_model)
    data = {
        **table.to_json(),
        "calibration": {
            "rms_3d_mm": np.round(stats["rms_3d_mm"], 2).tolist(),
            "rms_2d_mm_at_depth": np.round(stats["rms_2d_mm_at_depth"], 2).tolist(),
        },
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} from {stats['used']} of {stats['samples']} detections")
    print("rms 3D mm  ", np.round(stats["rms_3d_mm"], 1))
    print("rms 2D mm  ", np.round(stats["rms_2d_mm_at_depth"], 1))
    print("offsets mm ", np.round(np.linalg.norm(table.offsets, axis=1) * 1000, 1))


def procrustes(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (m) of a (21, 3) to b after the best similarity."""
    from handssca.fit.calibration import similarity_align

    return float(np.linalg.norm(similarity_align(a[None], b[None])[0] - b, axis=1).mean())


def evaluate(count: int, checkpoint: str | None = None, hand_model: str | None = None, start: int = 0) -> dict:
    """Per-hand errors on the "test" split's photo-like renders (see the module docstring)."""
    import torch

    from handssca.fit import FitInit, FitModel, fit_hand
    from handssca.fit.keypoints import pose_keypoints
    from handssca.hand import HandModel

    found, n = detect_renders(count, hand_model, start=start, split="test")
    hand = HandModel.load(hand_model, dtype=torch.float64)
    fm = FitModel.from_hand(hand)
    truth = pose_keypoints(fm.keypoints, found["pose"], found["betas"], found["transl"]).keypoints
    t = time.perf_counter()
    res = fit_hand(fm, found["keypoints_2d"], found["K"], found["keypoints_3d"])
    fit_ms = (time.perf_counter() - t) * 1000 / max(len(truth), 1)
    K = found["K"]
    proj = np.einsum("nij,npj->npi", K, res.joints)
    rows = {
        "landmarks_3d_pa_mm": [procrustes(found["keypoints_3d"][i], truth[i]) * 1000 for i in range(len(truth))],
        "fit_pa_mm": [procrustes(res.joints[i], truth[i]) * 1000 for i in range(len(truth))],
        "keypoints_2d_px": np.linalg.norm(found["keypoints_2d"] - found["joints_2d"], axis=-1).mean(1).tolist(),
        "fit_2d_px": np.linalg.norm(proj[..., :2] / proj[..., 2:] - found["joints_2d"], axis=-1).mean(1).tolist(),
    }
    mean_pose = FitInit(np.zeros_like(found["pose"]), np.zeros_like(found["betas"]), found["transl"])
    mean_pose.pose[:, :3] = found["pose"][:, :3]
    mp = pose_keypoints(fm.keypoints, mean_pose.pose, mean_pose.betas, mean_pose.transl).keypoints
    rows["mean_pose_pa_mm"] = [procrustes(mp[i], truth[i]) * 1000 for i in range(len(truth))]
    if checkpoint is not None:
        rows["network_pa_mm"], rows["predict_pa_mm"], rows["predict_used_fit"] = _network_errors(
            checkpoint, hand_model, found, truth
        )
    return {"renders": n, "found": len(truth), "fit_ms_per_hand": fit_ms, "rows": rows}


def _network_errors(checkpoint: str, hand_model: str | None, found: dict, truth: np.ndarray):
    """Per found hand, PA-MPJPE of (the network's joints on its detected box, as ``handssca predict`` crops
    it; the mesh ``handssca predict`` gives for it: ``reconstruct_all`` with the known camera, the fit
    started from and pulled towards the network, kept only when :func:`handssca.fit.usable`), and whether
    that mesh is the fit (1) or the network's (0)."""
    from handssca.data.synthetic import SyntheticHands
    from handssca.inference import HandReconstructor

    rec = HandReconstructor.from_checkpoint(checkpoint, hand_model, device="cpu")
    settings = {**SETTINGS}
    settings.pop("split")
    ds = SyntheticHands("test", int(found["index"].max()) + 1, hand_model=hand_model, **settings)
    network, shown, used = [], [], []
    for k, i in enumerate(found["index"].astype(int)):
        image = (np.clip(ds.render_original(i)["image"], 0, 1) * 255).round().astype(np.uint8)
        lo, hi = found["keypoints_2d"][k].min(0), found["keypoints_2d"][k].max(0)
        pred = rec(image, bbox=(*lo, *(hi - lo)), K=found["K"][k], refine=None)
        network.append(procrustes(pred.joints, truth[k]) * 1000)
        hands = rec.reconstruct_all(image, K=found["K"][k])
        best = min(hands, key=lambda h: np.abs(h.joints_2d - found["joints_2d"][k]).mean())
        shown.append(procrustes(best.joints, truth[k]) * 1000)
        used.append(float(best.extras["mesh_source"] == "landmark_fit"))
    return network, shown, used


def _cmd_evaluate(args) -> None:
    result = evaluate(args.count, args.checkpoint, args.hand_model)
    rows = result["rows"]
    print(
        f"{result['found']} of {result['renders']} test renders found; the fit {result['fit_ms_per_hand']:.1f} ms "
        f"per hand (all {result['found']} in one batch)"
    )
    print(f"{'':28s} {'mean':>7s} {'median':>7s}")
    for name, values in rows.items():
        print(f"{name:28s} {np.mean(values):7.2f} {np.median(values):7.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


def crop_fits(checkpoint: str, count: int = 150) -> dict:
    """On ``count`` test crops of each kind (photo-like; any orientation with the dataset's occluders), the
    landmark network run on the crop as ``evaluate --refine landmarks`` runs it: per crop, the network's and
    the fit's PA-MPJPE (mm) and the fit's residuals (2D as a fraction of the hand's size, 3D in mm): what the
    thresholds of :func:`handssca.fit.usable` were chosen on."""
    import copy

    import torch

    from handssca.data.loader import make_loader
    from handssca.data.synthetic import SyntheticHands
    from handssca.detect import HandDetector
    from handssca.engine.evaluate import per_sample_errors, predict
    from handssca.fit import FitInit, FitModel, fit_hand
    from handssca.model.checkpoint import load_model

    model = load_model(checkpoint)
    detector = HandDetector()
    fm = FitModel.from_hand(copy.deepcopy(model.hand).double())
    rows = {k: [] for k in ("hard", "network", "fit", "res2d", "res3d_mm")}
    for hard, settings in ((False, dict(max_occluders=0, max_tilt_deg=40.0)), (True, {})):
        ds = SyntheticHands("test", count, 0, model.config.input_size, **settings)
        preds = predict(model, make_loader(ds, 25, None, 0), torch.device("cpu"), False)
        net = per_sample_errors(preds.pred, preds.gt)["pa_mpjpe_mm"]
        for i in range(len(ds)):
            image = np.asarray(ds[i]["image"])
            S = image.shape[-1]
            crop = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)
            hand = detector.landmarks_in_box(crop, (S / 6, S / 6, S / 1.5, S / 1.5))
            if hand is None:
                continue
            init = FitInit(
                preds.pred["pose_aa"][i : i + 1].astype(float),
                preds.pred["betas"][i : i + 1].astype(float),
                np.zeros((1, 3)),
            )
            r = fit_hand(
                fm, hand.keypoints_2d[None], preds.gt["K"][i : i + 1].astype(float), hand.keypoints_3d[None], init=init
            )
            truth = preds.gt["joints_cam"][i].astype(float)
            rows["hard"].append(hard)
            rows["network"].append(net[i])
            rows["fit"].append(procrustes(r.joints[0], truth) * 1000)
            rows["res2d"].append(r.residual_2d_px[0] / max(np.ptp(hand.keypoints_2d, axis=0).max(), 1.0))
            rows["res3d_mm"].append(r.residual_3d_m[0] * 1000)
    return {k: np.asarray(v) for k, v in rows.items()}


def _cmd_crops(args) -> None:
    from handssca.fit.solver import MAX_RESIDUAL_2D, MAX_RESIDUAL_3D_M

    r = crop_fits(args.checkpoint, args.count)
    print(f"{len(r['fit'])} crops with landmarks ({int(r['hard'].sum())} hard)")
    q = np.quantile(r["res2d"], [0.25, 0.5, 0.75])
    edges = [-np.inf, *q, np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (r["res2d"] >= lo) & (r["res2d"] < hi)
        print(
            f"2D residual in [{lo:.3f}, {hi:.3f}): {int(m.sum())} crops, network {r['network'][m].mean():.2f}, fit {r['fit'][m].mean():.2f} mm"
        )
    keep = (r["res2d"] <= MAX_RESIDUAL_2D) & (r["res3d_mm"] <= MAX_RESIDUAL_3D_M * 1000)
    shown = np.where(keep, r["fit"], r["network"])
    for name, m in (("all", np.ones_like(keep)), ("photo-like", ~r["hard"]), ("hard", r["hard"])):
        print(
            f"{name}: network {r['network'][m].mean():.2f}, every fit {r['fit'][m].mean():.2f}, fits within the "
            f"thresholds ({keep[m].mean():.0%} kept) {shown[m].mean():.2f} mm"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("detect")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--occluded", type=int, default=0, help="also report the found rate on this many other renders")
    p.add_argument("--hand-model")
    p.set_defaults(func=_cmd_detect)
    p = sub.add_parser("table")
    p.add_argument("--hand-model")
    p.set_defaults(func=_cmd_table)
    p = sub.add_parser("evaluate")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--checkpoint")
    p.add_argument("--hand-model")
    p.add_argument("--json")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("crops", help="the fit's residuals against its error on network-sized crops")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--count", type=int, default=150)
    p.set_defaults(func=_cmd_crops)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
