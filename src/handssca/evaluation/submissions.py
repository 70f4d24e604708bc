"""The benchmarks' submission files from a dataset's predictions, chosen by dataset name.

Readers only read: what a submission needs from them is in their records (HO3D's GT wrist
``root_cam``, DexYCB's ``hand_side``, GT wrist and toolkit ``submission_id``). ``preds`` is the
evaluation loop's output: ``pred`` and ``gt`` dicts of stacked arrays (``gt["index"]`` the dataset
index of each row).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handssca.evaluation.files import write_dexycb_results, write_freihand_pred, write_ho3d_pred
from handssca.frames import mirror_points
from handssca.geometry import place_in_crop


def freihand(dataset, preds, out_dir: Path, crop_size: int) -> list[Path]:
    """``pred.json``: camera-frame joints and vertices, each prediction placed by its own 2D joints."""
    joints, verts = [], []
    for i in range(len(preds.pred["joints"])):
        t, _ = place_in_crop(preds.pred["joints"][i], preds.pred["joints_img"][i], preds.gt["K"][i], crop_size)
        joints.append(preds.pred["joints"][i] + t)
        verts.append(preds.pred["vertices"][i] + t)
    return [write_freihand_pred(out_dir / "pred.json", np.array(joints), np.array(verts))]


def ho3d(dataset, preds, out_dir: Path, crop_size: int) -> list[Path]:
    """``pred.zip``: wrist placed on the evaluation split's GT root, OpenGL frame, HO3D order."""
    roots = np.stack([r.root_cam if r.root_cam is not None else np.zeros(3) for r in dataset.records])
    idx = preds.gt["index"].astype(int)
    return [write_ho3d_pred(out_dir / "pred.zip", preds.pred["joints"], preds.pred["vertices"], roots[idx])]


def dexycb(dataset, preds, out_dir: Path, crop_size: int) -> list[Path]:
    """The toolkit's ``results.txt``: joints (mm) placed on the GT wrist, un-mirrored for left hands, by
    the toolkit's sample id."""
    idx = preds.gt["index"].astype(int)
    joints = preds.pred["joints"] - preds.pred["joints"][:, :1]
    ids = []
    for n, i in enumerate(idx):
        r = dataset.records[i]
        if r.hand_side == "left":
            joints[n] = mirror_points(joints[n])
        joints[n] = joints[n] + r.joints_cam[0]
        ids.append(int(i) if r.submission_id is None else int(r.submission_id))
    return [write_dexycb_results(out_dir / "results.txt", ids, joints)]


WRITERS = {"freihand": freihand, "ho3d": ho3d, "dexycb": dexycb}


def write_submission(dataset_name: str, dataset, preds, out_dir: str | os.PathLike, crop_size: int) -> list[Path]:
    """The submission file(s) of ``dataset_name``'s benchmark in ``out_dir`` ([] for datasets without one)."""
    writer = WRITERS.get(dataset_name)
    return [] if writer is None else writer(dataset, preds, Path(out_dir), crop_size)
