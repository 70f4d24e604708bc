"""Tiny FreiHAND, HO3D and DexYCB datasets written in each dataset's OWN conventions.

Nothing here uses the package's readers, label conversions or hand layer: hands are posed with
smplx (float64) from a random MANO-format model that the tests write in the official byte layout,
and each dataset's files are written the way its authors' tools write them:

- FreiHAND: MANO with ``flat_hand_mean=False`` (fingers relative to ``hands_mean``), OpenCV frame,
  ``xyz`` in FreiHAND order with tips 744/320/443/555/672, mano vector = pose, shape, uv_root, scale.
- HO3D: ``MANO(flat_hand_mean=True)(handPose, handBeta) + handTrans`` in the OpenGL camera frame,
  ``handJoints3D`` in HO3D order (MANO's 16 + tips 744/333/444/555/672), evaluation meta with the
  wrist and the hand box only.
- DexYCB: manopth ``use_pca=True, ncomps=45, flat_hand_mean=False`` with the side's OWN MANO file
  (left hands from MANO_LEFT.pkl: its own PCA basis and mean), ``pose_m`` = rotation, 45
  coefficients, translation; ``joint_3d`` OpenCV, manopth order and tips (left middle tip 445).
- HandOccNet's JSONs, as its parsing scripts make them from the raw datasets.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from scipy.spatial.transform import Rotation

from tests.hand.mano_files import official_pickle_bytes, plain_arrays, random_model_arrays

#: "MANO 16 joints + tips (thumb, index, middle, ring, pinky)" -> thumb-to-pinky order (spec mano.md 4).
TO_FREIHAND = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
TIPS = {
    "freihand": (744, 320, 443, 555, 672),
    "ho3d": (744, 333, 444, 555, 672),
    "manopth_right": (745, 317, 444, 556, 673),
    "manopth_left": (745, 317, 445, 556, 673),
}
GL = np.array([1.0, -1.0, -1.0])
W, H = 320, 240
K = np.array([[400.0, 0.0, 159.5], [0.0, 400.0, 121.0], [0.0, 0.0, 1.0]])
DEX_SERIAL = "836212060125"
DEX_SUBJECTS = ("20200709-subject-01", "20200820-subject-03")


# ---------------------------------------------------------------------------------------------- models
def left_arrays(right: dict, official_bug: bool, seed: int = 7) -> dict:
    """MANO_LEFT-like arrays: the right geometry mirrored across x (template, pose correctives, faces),
    shapedirs as the official left file has them (the right file's, x not negated) or mirrored, and
    its OWN random PCA basis and mean (a reader must use the left file's, not the right's)."""
    m = np.array([-1.0, 1.0, 1.0])
    rng = np.random.default_rng(seed)
    left = dict(right)
    left["v_template"] = right["v_template"] * m
    left["shapedirs_full"] = right["shapedirs_full"] * (1.0 if official_bug else m[None, :, None])
    sign = (m[:, None] * m[None, :]).ravel()
    left["posedirs"] = (right["posedirs"].reshape(-1, 3, 15, 9) * m[None, :, None, None] * sign).reshape(-1, 3, 135)
    left["f"] = right["f"][:, [0, 2, 1]]
    left["J"] = left["J_regressor"] @ left["v_template"]
    left["hands_components"] = rng.normal(size=(45, 45)) * 0.3
    left["hands_mean"] = rng.normal(size=45) * 0.2
    return left


class ManoFiles:
    """MANO_RIGHT.pkl / MANO_LEFT.pkl in the official byte layout (what a user points the config at)
    and smplx layers of the same arrays (the float64 reference that poses the dataset hands)."""

    def __init__(self, folder: Path, left_official_bug: bool = True, seed: int = 11) -> None:
        import smplx

        self.right = random_model_arrays(seed)
        self.left = left_arrays(self.right, left_official_bug)
        folder.mkdir(parents=True, exist_ok=True)
        self.right_path, self.left_path = folder / "MANO_RIGHT.pkl", folder / "MANO_LEFT.pkl"
        self.right_path.write_bytes(official_pickle_bytes(self.right))
        self.left_path.write_bytes(official_pickle_bytes(self.left))
        plain = folder / "plain"
        plain.mkdir(exist_ok=True)
        self.layers = {}
        for side, arrays in (("right", self.right), ("left", self.left)):
            p = plain / f"MANO_{side.upper()}.pkl"
            p.write_bytes(pickle.dumps(plain_arrays(arrays), protocol=2))
            self.layers[side] = smplx.MANO(
                str(p), is_rhand=side == "right", use_pca=False, flat_hand_mean=True, dtype=torch.float64, batch_size=1
            )

    def pose(
        self, side: str, full_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, tips
    ) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (778, 3), MANO16 + tips joints (21, 3)) for an ABSOLUTE pose (48), metres."""
        t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64)[None])  # noqa: E731
        with torch.no_grad():
            out = self.layers[side](
                global_orient=t(full_pose[:3]), hand_pose=t(full_pose[3:]), betas=t(betas), transl=t(transl)
            )
        v = out.vertices[0].numpy()
        return v, np.concatenate([out.joints[0, :16].numpy(), v[list(tips)]])

    def place(self, side, full_pose, betas, wrist, tips):
        """Pose with the translation that puts the wrist at ``wrist``; returns (vertices, joints, transl)."""
        _, j = self.pose(side, full_pose, betas, np.zeros(3), tips)
        transl = np.asarray(wrist) - j[0]
        v, j = self.pose(side, full_pose, betas, transl, tips)
        return v, j, transl


def random_rotvec(rng) -> np.ndarray:
    return Rotation.random(random_state=int(rng.integers(1 << 30))).as_rotvec()


def wrist_at(rng, u: float | None = None) -> np.ndarray:
    """An OpenCV-frame wrist in front of K's camera (at pixel column u if given)."""
    z = rng.uniform(0.45, 0.6)
    x = rng.uniform(-0.04, 0.04) * z / 0.5 if u is None else (u - K[0, 2]) * z / K[0, 0]
    return np.array([x, rng.uniform(-0.03, 0.03), z])


def pixels(points: np.ndarray) -> np.ndarray:
    p = points @ K.T
    return p[:, :2] / p[:, 2:]


def save_image(path: Path, rng, fmt: str = "PNG", size=(W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt, quality=95)


def dump_meta(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(meta, protocol=2))


# ---------------------------------------------------------------------------------------------- FreiHAND
def write_freihand(root: Path, mano: ManoFiles, n_train: int = 10, n_eval: int = 2, seed: int = 1) -> dict:
    """Official layout; returns {prefix: [dict(pose, betas, transl, xyz, verts)]}."""
    rng = np.random.default_rng(seed)
    hm = mano.right["hands_mean"]
    truth = {}
    for prefix, n in (("training", n_train), ("evaluation", n_eval)):
        items = []
        for _ in range(n):
            pose = np.concatenate([random_rotvec(rng), rng.normal(size=45) * 0.3])  # fingers relative to hands_mean
            betas = rng.normal(size=10)
            full = pose.copy()
            full[3:] += hm
            v, j, transl = mano.place("right", full, betas, wrist_at(rng), TIPS["freihand"])
            items.append(dict(pose=pose, betas=betas, transl=transl, xyz=j[TO_FREIHAND], verts=v))
        root.mkdir(parents=True, exist_ok=True)
        size = 224
        Kf = [[300.0, 0.0, 111.5], [0.0, 300.0, 111.5], [0.0, 0.0, 1.0]]
        (root / f"{prefix}_K.json").write_text(json.dumps([Kf for _ in items]))
        (root / f"{prefix}_xyz.json").write_text(json.dumps([s["xyz"].tolist() for s in items]))
        (root / f"{prefix}_verts.json").write_text(json.dumps([s["verts"].tolist() for s in items]))
        (root / f"{prefix}_mano.json").write_text(
            json.dumps([[np.concatenate([s["pose"], s["betas"], [100, 100], [1.0]]).tolist()] for s in items])
        )
        for v in range(4 if prefix == "training" else 1):
            for i in range(n):
                save_image(root / prefix / "rgb" / f"{i + v * n:08d}.jpg", rng, "JPEG", (size, size))
        truth[prefix] = items
    return truth


# ---------------------------------------------------------------------------------------------- HO3D
def write_ho3d(root: Path, mano: ManoFiles, n_train: int = 4, seed: int = 2) -> dict:
    """HO3D v2 layout; returns {"train": [...], "test": [...]} with the raw fits and CV/FreiHAND joints."""
    rng = np.random.default_rng(seed)
    train, lines = [], []
    for i in range(n_train):
        seq, frame = f"SEQ{i % 2}", f"{i:04d}"
        hand_pose = np.concatenate(
            [random_rotvec(rng), mano.right["hands_mean"] + rng.normal(size=45) * 0.3]
        )  # absolute
        beta = rng.normal(size=10)
        v_gl, j_gl, trans = mano.place("right", hand_pose, beta, wrist_at(rng) * GL, TIPS["ho3d"])
        dump_meta(
            root / "train" / seq / "meta" / f"{frame}.pkl",
            {
                "camMat": K,
                "handJoints3D": j_gl,
                "handPose": hand_pose,
                "handBeta": beta,
                "handTrans": trans,
                "objName": "004_sugar_box",
                "objRot": np.zeros((3, 1)),
                "objTrans": np.zeros(3),
            },
        )
        save_image(root / "train" / seq / "rgb" / f"{frame}.png", rng)
        lines.append(f"{seq}/{frame}")
        train.append(
            dict(
                key=f"{seq}/{frame}",
                handPose=hand_pose,
                handBeta=beta,
                handTrans=trans,
                joints_gl=j_gl,
                joints_cv=(j_gl * GL)[TO_FREIHAND],
                verts_cv=v_gl * GL,
            )
        )
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    test = []
    for i in range(2):
        hand_pose = np.concatenate([random_rotvec(rng), mano.right["hands_mean"] + rng.normal(size=45) * 0.3])
        v_gl, j_gl, _ = mano.place("right", hand_pose, rng.normal(size=10), wrist_at(rng) * GL, TIPS["ho3d"])
        px = pixels(j_gl * GL)
        box = np.array([*px.min(0) - 5, *px.max(0) + 5])  # x1, y1, x2, y2
        dump_meta(
            root / "evaluation" / "EV0" / "meta" / f"{i:04d}.pkl",
            {"camMat": K, "handJoints3D": j_gl[0], "handBoundingBox": box},
        )
        save_image(root / "evaluation" / "EV0" / "rgb" / f"{i:04d}.png", rng)
        test.append(
            dict(
                key=f"EV0/{i:04d}",
                root_cv=j_gl[0] * GL,
                box=box,
                joints_cv=(j_gl * GL)[TO_FREIHAND],
                verts_cv=v_gl * GL,
            )
        )
    (root / "evaluation.txt").write_text("".join(f"{t['key']}\n" for t in test))
    return {"train": train, "test": test}


def write_ho3d_handoccnet(root: Path, mano: ManoFiles, truth: dict) -> None:
    """HandOccNet's HO3D_{train,evaluation}_data.json for the same frames, as its parsing script makes
    them: OpenCV joints in the thumb-to-pinky order, the root rotation premultiplied by diag(1,-1,-1),
    fingers relative to hands_mean, no translation; evaluation: the wrist and the box as x, y, w, h."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, items in (("train", truth["train"]), ("evaluation", truth["test"])):
        images, anns = [], []
        for i, t in enumerate(items):
            seq, frame = t["key"].split("/")
            images.append({"id": i, "file_name": f"{seq}/rgb/{frame}.png", "width": W, "height": H})
            ann = {"id": i, "image_id": i, "cam_param": {"focal": [K[0, 0], K[1, 1]], "princpt": [K[0, 2], K[1, 2]]}}
            if split == "train":
                root_cv = Rotation.from_matrix(
                    np.diag(GL) @ Rotation.from_rotvec(t["handPose"][:3]).as_matrix()
                ).as_rotvec()
                pose = np.concatenate([root_cv, t["handPose"][3:] - mano.right["hands_mean"]])
                ann.update(
                    joints_coord_cam=t["joints_cv"].tolist(),
                    mano_param={"pose": pose.tolist(), "shape": t["handBeta"].tolist()},
                )
            else:
                b = t["box"]
                ann.update(root_joint_cam=t["root_cv"].tolist(), bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]])
            anns.append(ann)
        (root / "annotations" / f"HO3D_{split}_data.json").write_text(
            json.dumps({"images": images, "annotations": anns})
        )


# ---------------------------------------------------------------------------------------------- DexYCB
def write_dexycb(root: Path, mano: ManoFiles, seed: int = 3) -> list[dict]:
    """Toolkit layout: subjects 1 and 3, five sequences each (the fifth held out: val for subject 1,
    test for subject 3), one camera, two frames each of which one has no hand. Left hands: subject
    1's second sequence and subject 3's test sequence. Subject 3's test hand sits on the image's
    left edge (its box is clipped) in the second frame (toolkit sample index 1 of s0_test)."""
    rng = np.random.default_rng(seed)
    intr = root / "calibration" / "intrinsics"
    intr.mkdir(parents=True, exist_ok=True)
    (intr / f"{DEX_SERIAL}_640x480.yml").write_text(
        yaml.safe_dump(
            {"color": {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "ppx": float(K[0, 2]), "ppy": float(K[1, 2])}}
        )
    )
    out, next_id = [], {"train": 0, "val": 0, "test": 0}  # the toolkit's sample index, per split
    for s, subject in enumerate(DEX_SUBJECTS):
        for q in range(5):
            seq = f"20200709_1530{q}{s}"
            split = "train" if q < 4 else ("val" if s == 0 else "test")
            side = "left" if (s, q) in ((0, 1), (1, 4)) else "right"
            calib = f"{subject}_{q}"
            betas = rng.normal(size=10)
            (root / "calibration" / f"mano_{calib}").mkdir(parents=True, exist_ok=True)
            (root / "calibration" / f"mano_{calib}" / "mano.yml").write_text(yaml.safe_dump({"betas": betas.tolist()}))
            d = root / subject / seq
            d.mkdir(parents=True)
            (d / "meta.yml").write_text(
                yaml.safe_dump({"serials": [DEX_SERIAL], "num_frames": 2, "mano_sides": [side], "mano_calib": [calib]})
            )
            arrays = mano.right if side == "right" else mano.left
            coeffs = rng.normal(size=45) * 0.5
            rot = random_rotvec(rng)
            full = np.concatenate([rot, arrays["hands_mean"] + coeffs @ arrays["hands_components"]])
            wrist = wrist_at(rng, u=20.0 if split == "test" else None)
            v, j, transl = mano.place(side, full, betas, wrist, TIPS[f"manopth_{side}"])
            j = j[TO_FREIHAND]
            # two frames per camera; one has no hand (all -1): the second one, but the first in the test sequence
            hand_frame = 1 if split == "test" else 0
            for f in range(2):
                save_image(d / DEX_SERIAL / f"color_{f:06d}.jpg", rng, "JPEG")
                if f == hand_frame:
                    np.savez(
                        d / DEX_SERIAL / f"labels_{f:06d}.npz",
                        seg=np.zeros((H, W), np.uint8),
                        pose_y=np.zeros((1, 3, 4), np.float32),
                        joint_3d=j[None].astype(np.float32),
                        joint_2d=pixels(j)[None].astype(np.float32),
                        pose_m=np.concatenate([rot, coeffs, transl])[None].astype(np.float32),
                    )
                else:
                    np.savez(
                        d / DEX_SERIAL / f"labels_{f:06d}.npz",
                        seg=np.zeros((H, W), np.uint8),
                        pose_y=np.zeros((1, 3, 4), np.float32),
                        joint_3d=-np.ones((1, 21, 3), np.float32),
                        joint_2d=-np.ones((1, 21, 2), np.float32),
                        pose_m=np.zeros((1, 51), np.float32),
                    )
            out.append(
                dict(
                    subject=subject,
                    seq=seq,
                    side=side,
                    betas=betas,
                    rot=rot,
                    coeffs=coeffs,
                    transl=transl,
                    joints=j.astype(np.float32).astype(np.float64),
                    verts=v,
                    image_id=next_id[split] + hand_frame,
                    frame=hand_frame,
                    split=split,
                )
            )
            next_id[split] += 2
    return out


def write_dexycb_handoccnet(root: Path, mano: ManoFiles, truth: list[dict]) -> None:
    """HandOccNet's DEX_YCB_s0_{train,test}_data.json: the toolkit's joints, 2D joints, side, and the
    PCA pose turned into axis-angle relative to the SIDE'S OWN mean (left hands stay left)."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        images, anns = [], []
        for t in truth:
            if t["split"] != split:
                continue
            arrays = mano.right if t["side"] == "right" else mano.left
            pose = np.concatenate([t["rot"], t["coeffs"] @ arrays["hands_components"]])
            images.append(
                {
                    "id": t["image_id"],
                    "file_name": f"{t['subject']}/{t['seq']}/{DEX_SERIAL}/color_{t['frame']:06d}.jpg",
                    "width": W,
                    "height": H,
                }
            )
            anns.append(
                {
                    "id": t["image_id"],
                    "image_id": t["image_id"],
                    "joints_coord_cam": t["joints"].tolist(),
                    "joints_img": pixels(t["joints"]).tolist(),
                    "hand_type": t["side"],
                    "cam_param": {"focal": [K[0, 0], K[1, 1]], "princpt": [K[0, 2], K[1, 2]]},
                    "mano_param": {"pose": pose.tolist(), "shape": t["betas"].tolist()},
                }
            )
        (root / "annotations" / f"DEX_YCB_s0_{split}_data.json").write_text(
            json.dumps({"images": images, "annotations": anns})
        )


# ---------------------------------------------------------------------------------------------- official boxes
def official_get_bbox(joints_px: np.ndarray, expansion: float) -> np.ndarray:
    """HandOccNet ``get_bbox`` (float32 result), written from its description."""
    x, y = joints_px[:, 0], joints_px[:, 1]
    xmin, xmax, ymin, ymax = min(x), max(x), min(y), max(y)
    cx, w = (xmin + xmax) / 2.0, (xmax - xmin) * expansion
    cy, h = (ymin + ymax) / 2.0, (ymax - ymin) * expansion
    return np.array([cx - 0.5 * w, cy - 0.5 * h, w, h]).astype(np.float32)


def official_process_bbox(bbox: np.ndarray, width: int, height: int, expansion: float) -> np.ndarray | None:
    """HandOccNet ``process_bbox`` with a square input (aspect 1)."""
    x, y, w, h = bbox
    x1, y1 = np.max((0, x)), np.max((0, y))
    x2 = np.min((width - 1, x1 + np.max((0, w - 1))))
    y2 = np.min((height - 1, y1 + np.max((0, h - 1))))
    if not (w * h > 0 and x2 >= x1 and y2 >= y1):
        return None
    b = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)
    w, h = b[2], b[3]
    cx, cy = b[0] + w / 2.0, b[1] + h / 2.0
    if w > h:
        h = w
    elif w < h:
        w = h
    b[2], b[3] = w * expansion, h * expansion
    b[0], b[1] = cx - b[2] / 2.0, cy - b[3] / 2.0
    return b
