"""Tiny datasets in the official on-disk layouts, generated from the default hand and known cameras."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from handssca.data.synthetic import SyntheticHands
from handssca.hand.joint_orders import FREIHAND_TO_HO3D

GL = np.array([1.0, -1.0, -1.0])


def scenes(n: int, seed: int = 0, size: int = 150):
    """n rendered scenes (canvas 1.5 * size) with labels in package conventions."""
    ds = SyntheticHands("test", n, seed=seed, image_size=size, max_occluders=0)
    return [ds.render_original(i) for i in range(n)], ds.hand


def save_rgb(path: Path, image: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path, fmt, quality=98)


def write_freihand(root: Path, n_train: int = 3, n_eval: int = 2) -> dict:
    sc, hand = scenes(n_train + n_eval, seed=1)
    for prefix, items in (("training", sc[:n_train]), ("evaluation", sc[n_train:])):
        n = len(items)
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{prefix}_K.json").write_text(json.dumps([s["K"].tolist() for s in items]))
        (root / f"{prefix}_xyz.json").write_text(json.dumps([s["joints_cam"].tolist() for s in items]))
        (root / f"{prefix}_verts.json").write_text(json.dumps([s["vertices_cam"][:778].tolist() for s in items]))
        mano = [[np.concatenate([s["pose"], s["betas"], [0, 0], [1]]).tolist()] for s in items]
        (root / f"{prefix}_mano.json").write_text(json.dumps(mano))
        versions = 4 if prefix == "training" else 1
        for v in range(versions):
            for i, s in enumerate(items):
                save_rgb(root / prefix / "rgb" / f"{i + v * n:08d}.jpg", s["image"] * (1 - 0.1 * v), "JPEG")
    return {"train": sc[:n_train], "test": sc[n_train:]}


def _dump_meta(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(meta, protocol=2))


def write_ho3d(root: Path, hands_mean: np.ndarray) -> dict:
    sc, _ = scenes(4, seed=2)
    train, test = sc[:3], sc[3:]
    lines = []
    for i, s in enumerate(train):
        seq, frame = f"SEQ{i % 2}", f"{i:04d}"
        save_rgb(root / "train" / seq / "rgb" / f"{frame}.png", s["image"])
        pose = s["pose"].copy()
        pose[3:] += hands_mean  # HO3D stores flat_hand_mean=True poses
        _dump_meta(root / "train" / seq / "meta" / f"{frame}.pkl", {
            "camMat": s["K"], "handJoints3D": s["joints_cam"][FREIHAND_TO_HO3D] * GL, "handPose": pose,
            "handBeta": s["betas"], "handTrans": np.zeros(3), "objName": "x"})  # fmt: skip
        lines.append(f"{seq}/{frame}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    s = test[0]
    save_rgb(root / "evaluation" / "EV0" / "rgb" / "0000.png", s["image"])
    px = s["joints_cam"] @ s["K"].T
    px = px[:, :2] / px[:, 2:]
    lo, hi = px.min(0), px.max(0)
    _dump_meta(root / "evaluation" / "EV0" / "meta" / "0000.pkl", {
        "camMat": s["K"], "handJoints3D": s["joints_cam"][0] * GL, "handBoundingBox": np.array([*lo, *hi])})  # fmt: skip
    (root / "evaluation.txt").write_text("EV0/0000\n")
    return {"train": train, "test": test}


def write_dexycb(root: Path, components: np.ndarray) -> dict:
    """Subjects 1 and 3, five sequences each (index 4 held out); subject 3's test sequence is a left hand."""
    from handssca.data.dexycb import SERIALS, SUBJECTS

    sc, _ = scenes(3, seed=3)
    serial = SERIALS[0]
    K = sc[0]["K"]
    intr = root / "calibration" / "intrinsics"
    intr.mkdir(parents=True)
    (intr / f"{serial}_640x480.yml").write_text(yaml.safe_dump({"color": {"fx": float(K[0, 0]), "fy": float(K[1, 1]),
                                                                          "ppx": float(K[0, 2]), "ppy": float(K[1, 2])}}))  # fmt: skip
    used = {}
    for subj_i, subject in ((0, SUBJECTS[0]), (2, SUBJECTS[2])):
        for q in range(5):
            seq = f"2020-seq-{q}"
            s = sc[(subj_i + q) % 3]
            left = subj_i == 2 and q == 4
            calib = f"calib{subj_i}_{q}"
            (root / "calibration" / f"mano_{calib}").mkdir(parents=True, exist_ok=True)
            (root / "calibration" / f"mano_{calib}" / "mano.yml").write_text(yaml.safe_dump({"betas": s["betas"].tolist()}))
            d = root / subject / seq
            d.mkdir(parents=True)
            (d / "meta.yml").write_text(yaml.safe_dump({"mano_sides": ["left" if left else "right"], "mano_calib": [calib]}))
            image, joints, pose = s["image"], s["joints_cam"], s["pose"].copy()
            if left:  # store the mirror image: a left hand seen by the same camera
                w = image.shape[1]
                image = image[:, ::-1]
                m = np.array([-1.0, 1.0, 1.0])
                joints = joints * m
                # the camera's principal point must mirror too for an exact mirror image: keep K symmetric
                assert abs(K[0, 2] - (w - 1) / 2) < 1e-9
                pose = (pose.reshape(16, 3) * np.array([1.0, -1.0, -1.0])).ravel()
            comps = components if not left else (components.reshape(45, 15, 3) * np.array([1.0, -1.0, -1.0])).reshape(45, 45)
            coeffs = np.linalg.solve(comps.T, pose[3:])
            save_rgb(d / serial / "color_000000.jpg", image, "JPEG")
            np.savez(d / serial / "labels_000000.npz", joint_3d=joints[None].astype(np.float32),
                     joint_2d=np.zeros((1, 21, 2)), pose_m=np.concatenate([pose[:3], coeffs, [0, 0, 0]])[None])  # fmt: skip
            np.savez(d / serial / "labels_000001.npz", joint_3d=-np.ones((1, 21, 3), np.float32),
                     joint_2d=np.zeros((1, 21, 2)), pose_m=np.zeros((1, 51)))  # fmt: skip
            save_rgb(d / serial / "color_000001.jpg", image, "JPEG")
            used[(subject, seq)] = (s, left)
    return used
