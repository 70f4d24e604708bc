"""HO3D v2 / v3 in the official layout.

    root/train.txt, root/evaluation.txt            "<sequence>/<frame>" per line
    root/train/<seq>/rgb/<frame>.png (v2) or .jpg (v3)
    root/train/<seq>/meta/<frame>.pkl              handPose (48), handBeta (10), handTrans (3),
                                                   handJoints3D (21, 3), camMat (3, 3)
    root/evaluation/<seq>/{rgb,meta}/...           meta: handBoundingBox (x1, y1, x2, y2), handJoints3D = root (3), camMat
    root/evaluation_xyz.json, evaluation_verts.json (optional: the released evaluation labels)

HO3D's conventions (its toolkit): the hand is ``MANO(flat_hand_mean=True)(handPose, handBeta) +
handTrans`` in the **OpenGL** camera frame (y up, hand at -z), which is flipped by diag(1, -1, -1)
before projecting with camMat; ``handJoints3D`` is in that frame, in HO3D order (MANO's 16 joints,
then the tips thumb..pinky = vertices 744, 333, 444, 555, 672). The reader converts to the package
conventions: joints to the OpenCV frame and FreiHAND order; the pose made relative to the MANO
file's ``hands_mean`` and its global orientation premultiplied by diag(1, -1, -1); the translation
moved with the wrist, so that ``hand(pose, betas) + transl`` is the hand in the OpenCV frame
(``data/mano_labels.py``). This needs the MANO file (``model.hand_model``).
Splits: ``train`` = train.txt minus the last ``val_fraction`` of its lines, ``val`` = those lines,
``test`` = evaluation.txt. Meta pickles are read with the allow-list unpickler.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from handssca.data.base import DatasetLayoutError, Record, RecordDataset, as_array, load_json, require
from handssca.data.mano_labels import opengl_to_opencv, relative_to_mean, require_hand_model
from handssca.frames import opengl_to_opencv as opengl_to_opencv_points
from handssca.hand.joint_orders import HO3D_TO_FREIHAND
from handssca.io.safe_pickle import safe_pickle_load

log = logging.getLogger("handssca.data")
#: Fingertip vertices (thumb..pinky) of HO3D's ``handJoints3D`` (its toolkit's patched MANO layer).
FINGERTIPS = "ho3d"


def _meta(path: Path) -> dict:
    require(path, "annotation pickle")
    meta = safe_pickle_load(path, DatasetLayoutError)
    if not isinstance(meta, dict):
        raise DatasetLayoutError(f"{path}: expected a pickled dict; found {type(meta).__name__}")
    return meta


class HO3D(RecordDataset):
    """HO3D through its official files; ``hand_model``: the right MANO :class:`~handssca.hand.HandModel`."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        hand_model=None,
        image_size: int = 256,
        augment: bool = False,
        version: str = "v2",
        seed: int = 0,
        val_fraction: float = 0.05,
    ) -> None:
        mano = require_hand_model(hand_model, "HO3D")
        root = require(Path(root), "HO3D root folder")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test; got {split!r}")
        if version not in ("v2", "v3"):
            raise ValueError(f"ho3d version: expected v2 or v3; got {version!r}")
        ext = ".png" if version == "v2" else ".jpg"
        list_name, folder = ("evaluation.txt", "evaluation") if split == "test" else ("train.txt", "train")
        lines = [ln.strip() for ln in require(root / list_name, "split list").read_text().splitlines() if ln.strip()]
        if split != "test":
            cut = len(lines) - int(round(len(lines) * val_fraction))
            lines = lines[:cut] if split == "train" else lines[cut:]
        eval_xyz = eval_verts = None
        if split == "test" and (root / "evaluation_xyz.json").exists():
            eval_xyz = load_json(root / "evaluation_xyz.json", "released evaluation joints")
            eval_verts = (
                load_json(root / "evaluation_verts.json", "released evaluation vertices")
                if (root / "evaluation_verts.json").exists()
                else None
            )
        records, skipped = [], []
        for k, line in enumerate(lines):
            if "/" not in line:
                raise DatasetLayoutError(f"{root / list_name}:{k + 1}: expected <sequence>/<frame>; got {line!r}")
            seq, frame = line.split("/", 1)
            meta_path = root / folder / seq / "meta" / f"{frame}.pkl"
            meta = _meta(meta_path)
            where = str(meta_path)
            if meta.get("camMat") is None:
                raise DatasetLayoutError(f"{meta_path}: key 'camMat' missing")
            if meta.get("handJoints3D") is None:  # frames without a hand annotation (they exist in HO3D v3)
                if split == "test":
                    raise DatasetLayoutError(f"{meta_path}: key 'handJoints3D' (the GT root) missing")
                skipped.append(line)
                continue
            rec = Record(
                root / folder / seq / "rgb" / f"{frame}{ext}",
                as_array(meta["camMat"], (3, 3), f"{where} camMat"),
                key=line,
            )
            if split != "test":
                joints = opengl_to_opencv_points(
                    as_array(meta["handJoints3D"], (21, 3), f"{where} handJoints3D")[HO3D_TO_FREIHAND]
                )
                rec.joints_cam = joints
                for key in ("handPose", "handBeta", "handTrans"):
                    if meta.get(key) is None:
                        raise DatasetLayoutError(f"{meta_path}: key {key!r} missing")
                betas = as_array(meta["handBeta"], (10,), f"{where} handBeta")
                pose_gl = relative_to_mean(as_array(meta["handPose"], (48,), f"{where} handPose"), mano.hands_mean)
                root_rest = mano.rest_root(betas)
                rec.pose, rec.transl = opengl_to_opencv(
                    pose_gl, as_array(meta["handTrans"], (3,), f"{where} handTrans"), root_rest
                )
                rec.betas, rec.root_rest = betas, root_rest
            else:
                rec.root_cam = opengl_to_opencv_points(
                    as_array(meta["handJoints3D"], (3,), f"{where} handJoints3D (root)")
                )
                box = as_array(meta.get("handBoundingBox"), (4,), f"{where} handBoundingBox")
                rec.bbox = np.array([box[0], box[1], box[2] - box[0], box[3] - box[1]])
                if eval_xyz is not None:
                    rec.joints_cam = opengl_to_opencv_points(
                        as_array(eval_xyz[k], (21, 3), f"evaluation_xyz.json entry {k}")[HO3D_TO_FREIHAND]
                    )
                if eval_verts is not None:
                    rec.vertices_cam = opengl_to_opencv_points(
                        as_array(eval_verts[k], (778, 3), f"evaluation_verts.json entry {k}")
                    )
            records.append(rec)
        if skipped:
            log.warning(
                "HO3D %s: %d frame(s) without a hand annotation skipped (first: %s)", split, len(skipped), skipped[0]
            )
        if records and not records[0].image.is_file():
            raise DatasetLayoutError(f"{records[0].image}: missing (first image of the {split} split)")
        super().__init__(records, image_size, augment, seed)
