"""DexYCB in the toolkit's layout, with the ``s0`` split rules.

    root/<subject>/<sequence>/meta.yml                         mano_sides: [right|left], mano_calib: [name]
    root/<subject>/<sequence>/<serial>/color_%06d.jpg
    root/<subject>/<sequence>/<serial>/labels_%06d.npz         joint_3d (1,21,3) m, joint_2d (1,21,2), pose_m (1,51)
    root/calibration/intrinsics/<serial>_640x480.yml          color: {fx, fy, ppx, ppy}
    root/calibration/mano_<calib>/mano.yml                     betas: [10]

s0: the 10 subjects' sequences, sorted, indexed per subject; train = index % 5 != 4 (all subjects),
val = subjects 1-2 with index % 5 == 4, test = subjects 3-10 with index % 5 == 4; all 8 cameras.
Frames whose joints are all -1 (no hand) are skipped.

DexYCB's conventions (its toolkit): manopth ``ManoLayer(use_pca=True, ncomps=45,
flat_hand_mean=False, side=<the sequence's side>)`` with that side's own MANO file (MANO_LEFT.pkl
for left hands, its own ``hands_components`` and ``hands_mean``, shapedirs as shipped);
``pose_m`` = global orientation (3), 45 PCA coefficients, translation (3); ``joint_3d`` in the
OpenCV camera frame, metres, manopth's order (= FreiHAND order) with manopth's tips (right 745,
317, 444, 556, 673; left 745, 317, 445, 556, 673). The reader decodes the PCA pose with the side's
basis and makes it relative to ``hands_mean``. Left hands are mirrored to right on load (image,
labels and pose; ``data/mano_labels.left_fit_to_right``) and keep ``hand_side="left"`` and their
betas (exact when the left file is the mirror of the right; the official left file is not quite,
see docs/datasets.md). Test crops come from
the GT 2D joints, as in HandOccNet's protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from handssca.data.base import DatasetLayoutError, Record, RecordDataset, as_array, require
from handssca.data.mano_labels import (
    ManoArrays,
    left_fit_to_right,
    pca_to_relative,
    require_hand_model,
)
from handssca.frames import mirror_points, mirror_pose

SUBJECTS = [
    "20200709-subject-01",
    "20200813-subject-02",
    "20200820-subject-03",
    "20200903-subject-04",
    "20200908-subject-05",
    "20200918-subject-06",
    "20200928-subject-07",
    "20201002-subject-08",
    "20201015-subject-09",
    "20201022-subject-10",
]
#: Fingertip vertices of ``joint_3d``: manopth's (right); left hands use vertex 445 for the middle tip.
FINGERTIPS = "manopth"
FINGERTIPS_LEFT = (745, 317, 445, 556, 673)
SERIALS = [
    "836212060125",
    "839512060362",
    "840412060917",
    "841412060263",
    "932122060857",
    "932122060861",
    "932122061900",
    "932122062010",
]


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
            if (
                (split == "train" and not held)
                or (split == "val" and held and s < 2)
                or (split == "test" and held and s >= 2)
            ):
                out.append((subject, seq))
    return out


# The arguments of mano_labels.left_fit_to_right, passed through: this wrapper only changes the convention.
def left_labels(
    global_orient: np.ndarray,
    finger_pose_full: np.ndarray,
    betas: np.ndarray,
    transl: np.ndarray,
    left: ManoArrays,
    right: ManoArrays,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A left-hand fit -> a :class:`Record`'s (pose, betas, transl, root_rest): the right model's labels
    of the mirrored hand, stored un-mirrored (the exact mirror of the right model) for the dataset
    step, which mirrors the record to right."""
    pose_r, betas_r, transl_r = left_fit_to_right(global_orient, finger_pose_full, betas, transl, left, right)
    return mirror_pose(pose_r), betas_r, mirror_points(transl_r), right.rest_root(betas_r)


def _frame_number(label: Path) -> int:
    try:
        return int(label.stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise DatasetLayoutError(f"{label}: expected a name labels_<frame>.npz") from None


class DexYCB(RecordDataset):
    """DexYCB s0 through the toolkit's files. ``hand_model``: the right MANO
    :class:`~handssca.hand.HandModel`; ``left_hand_model``: MANO_LEFT.pkl's, needed for left sequences."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        hand_model=None,
        image_size: int = 256,
        augment: bool = False,
        seed: int = 0,
        left_hand_model=None,
    ) -> None:
        right = require_hand_model(hand_model, "DexYCB")
        left = ManoArrays.of(left_hand_model) if left_hand_model is not None else None
        root = require(Path(root), "DexYCB root folder")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test; got {split!r}")
        if not any((root / s).is_dir() for s in SUBJECTS):
            raise DatasetLayoutError(f"{root}: no subject folder ({SUBJECTS[0]}, ...)")
        intr, betas_cache, records = {}, {}, []
        toolkit_index = 0  # the toolkit's sample index in the split: every (sequence, camera, frame), hand or not
        for subject, seq in s0_sequences(root, split):
            meta_path = root / subject / seq / "meta.yml"
            meta = _yaml(meta_path, "sequence meta")
            side = (meta.get("mano_sides") or [None])[0]
            if side not in ("right", "left"):
                raise DatasetLayoutError(f"{meta_path}: mano_sides: expected right or left; got {side!r}")
            if side == "left" and left is None:
                raise DatasetLayoutError(
                    f"{meta_path}: a left-hand sequence; its PCA pose needs MANO_LEFT.pkl "
                    f"(config key data.hand_model_left, or MANO_LEFT.pkl beside model.hand_model)"
                )
            calib = (meta.get("mano_calib") or [None])[0]
            if calib not in betas_cache:
                mano = _yaml(root / "calibration" / f"mano_{calib}" / "mano.yml", "MANO shape calibration")
                betas_cache[calib] = as_array(mano.get("betas"), (10,), f"mano_{calib}/mano.yml betas")
            betas = betas_cache[calib]
            for serial in SERIALS:
                cam_dir = root / subject / seq / serial
                if not cam_dir.is_dir():
                    continue
                labels = sorted(cam_dir.glob("labels_*.npz"))
                num_frames = int(meta.get("num_frames") or len(labels))
                offset, toolkit_index = toolkit_index, toolkit_index + num_frames
                if serial not in intr:
                    c = _yaml(root / "calibration" / "intrinsics" / f"{serial}_640x480.yml", "camera intrinsics").get(
                        "color", {}
                    )
                    try:
                        intr[serial] = np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1.0]])
                    except KeyError as e:
                        raise DatasetLayoutError(f"{serial}_640x480.yml: key color.{e.args[0]} missing") from None
                for label in labels:
                    try:
                        with np.load(label, allow_pickle=False) as z:
                            j3d, pose_m = z["joint_3d"], z["pose_m"]
                    except (KeyError, ValueError, OSError, EOFError) as e:
                        raise DatasetLayoutError(f"{label}: malformed label file ({e})") from None
                    j3d = as_array(j3d, (1, 21, 3), f"{label} joint_3d")[0]
                    if np.all(j3d == -1):
                        continue
                    pm = as_array(pose_m, (1, 51), f"{label} pose_m")[0]
                    if side == "left":
                        pose, b, transl, root_rest = left_labels(
                            pm[:3], left.hands_mean + pm[3:48] @ left.components, betas, pm[48:51], left, right
                        )
                    else:
                        pose, b, transl, root_rest = (
                            pca_to_relative(pm[:3], pm[3:48], right.components),
                            betas,
                            pm[48:51],
                            right.rest_root(betas),
                        )
                    image = cam_dir / label.name.replace("labels_", "color_").replace(".npz", ".jpg")
                    records.append(
                        Record(
                            image,
                            intr[serial],
                            joints_cam=j3d.astype(np.float64),
                            pose=pose,
                            betas=b,
                            transl=transl,
                            root_rest=root_rest,
                            hand_side=side,
                            key=f"{subject}/{seq}/{serial}/{label.stem}",
                            submission_id=offset + _frame_number(label),
                        )
                    )
        super().__init__(records, image_size, augment, seed)
