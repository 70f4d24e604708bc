"""DexYCB in the toolkit's layout, with the ``s0`` split rules.

    root/<subject>/<sequence>/meta.yml                         mano_sides: [right|left], mano_calib: [name]
    root/<subject>/<sequence>/<serial>/color_%06d.jpg
    root/<subject>/<sequence>/<serial>/labels_%06d.npz         joint_3d (1,21,3) m, joint_2d (1,21,2), pose_m (1,51)
    root/calibration/intrinsics/<serial>_640x480.yml          color: {fx, fy, ppx, ppy}
    root/calibration/mano_<calib>/mano.yml                     betas: [10]

s0: the 10 subjects' sequences, sorted, indexed per subject; train = index % 5 != 4 (all subjects),
val = subjects 1-2 with index % 5 == 4, test = subjects 3-10 with index % 5 == 4; all 8 cameras.
Frames whose joints are all -1 (no hand) are skipped. ``pose_m`` holds 45 PCA coefficients
(manopth, flat_hand_mean=False) and the translation: the reader turns them into axis-angle relative to
``hands_mean`` with the hand model's PCA basis (meaningful with the MANO file). Left hands are mirrored
to right on load (image, labels and pose) and keep ``hand_side="left"``. Test crops come from the GT
2D joints, as in HandOccNet's protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from handssca.data.base import DatasetLayoutError, Record, RecordDataset, as_array, require

SUBJECTS = ["20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
            "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
            "20201015-subject-09", "20201022-subject-10"]  # fmt: skip
SERIALS = ["836212060125", "839512060362", "840412060917", "841412060263", "932122060857", "932122060861",
           "932122061900", "932122062010"]  # fmt: skip


def _yaml(path: Path, what: str) -> dict:
    require(path, what)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DatasetLayoutError(f"{path}: malformed YAML ({e})") from None
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}: expected a mapping")
    return data


def s0_sequences(root: Path, split: str) -> list[tuple[str, str]]:
    """(subject, sequence) pairs of the s0 setup for ``split``."""
    out = []
    for s, subject in enumerate(SUBJECTS):
        folder = root / subject
        if not folder.is_dir():
            continue
        seqs = sorted(p.name for p in folder.iterdir() if p.is_dir())
        for i, seq in enumerate(seqs):
            held = i % 5 == 4
            if (split == "train" and not held) or (split == "val" and held and s < 2) or (split == "test" and held and s >= 2):
                out.append((subject, seq))
    return out


class DexYCB(RecordDataset):
    def __init__(self, root: str, split: str = "train", image_size: int = 256, augment: bool = False, seed: int = 0,
                 hand_model=None) -> None:  # fmt: skip
        root = require(Path(root), "DexYCB root folder")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test; got {split!r}")
        if not any((root / s).is_dir() for s in SUBJECTS):
            raise DatasetLayoutError(f"{root}: no subject folder ({SUBJECTS[0]}, ...)")
        if hand_model is None:
            from handssca.hand import HandModel

            hand_model = HandModel.load(None)
        comps = hand_model.hands_components.double().numpy()  # (45, 45) rows: PCA basis of the finger pose
        # a left hand's coefficients use the left model's basis, the mirror of the right one's
        comps_left = (comps.reshape(45, 15, 3) * np.array([1.0, -1.0, -1.0])).reshape(45, 45)
        intr, betas_cache, records = {}, {}, []
        for subject, seq in s0_sequences(root, split):
            meta = _yaml(root / subject / seq / "meta.yml", "sequence meta")
            side = (meta.get("mano_sides") or ["right"])[0]
            calib = (meta.get("mano_calib") or [None])[0]
            if calib not in betas_cache:
                mano = _yaml(root / "calibration" / f"mano_{calib}" / "mano.yml", "MANO shape calibration")
                betas_cache[calib] = as_array(mano.get("betas"), (10,), f"mano_{calib}/mano.yml betas")
            for serial in SERIALS:
                cam_dir = root / subject / seq / serial
                if not cam_dir.is_dir():
                    continue
                if serial not in intr:
                    c = _yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml", "camera intrinsics").get("color", {})
                    try:
                        intr[serial] = np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1.0]])
                    except KeyError as e:
                        raise DatasetLayoutError(f"{serial}_640x480.yml: key color.{e.args[0]} missing") from None
                for label in sorted(cam_dir.glob("labels_*.npz")):
                    try:
                        with np.load(label, allow_pickle=False) as z:
                            j3d, pose_m = z["joint_3d"], z["pose_m"]
                    except (KeyError, ValueError, OSError, EOFError) as e:
                        raise DatasetLayoutError(f"{label}: malformed label file ({e})") from None
                    j3d = as_array(j3d, (1, 21, 3), f"{label} joint_3d")[0]
                    if np.all(j3d == -1):
                        continue
                    pm = as_array(pose_m, (1, 51), f"{label} pose_m")[0]
                    pose = np.concatenate([pm[:3], pm[3:48] @ (comps_left if side == "left" else comps)])
                    image = cam_dir / label.name.replace("labels_", "color_").replace(".npz", ".jpg")
                    records.append(Record(image, intr[serial], joints_cam=j3d, pose=pose, betas=betas_cache[calib],
                                          hand_side=side, key=f"{subject}/{seq}/{serial}/{label.stem}"))  # fmt: skip
        super().__init__(records, image_size, augment, seed)

    def write_submission(self, preds, out_dir) -> list[Path]:
        """The toolkit's result txt: camera-frame joints (mm) placed on the GT root, un-mirrored for left hands."""
        from handssca.evaluation.files import write_dexycb_results

        idx = preds.gt["index"].astype(int)
        joints = preds.pred["joints"] - preds.pred["joints"][:, :1]
        for n, i in enumerate(idx):
            r = self.records[i]
            if r.hand_side == "left":
                joints[n] = joints[n] * np.array([-1.0, 1.0, 1.0])
            joints[n] = joints[n] + r.joints_cam[0]
        return [write_dexycb_results(Path(out_dir) / "results.txt", idx, joints)]
