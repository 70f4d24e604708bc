"""FreiHAND in its official layout.

    root/training_{K,mano,xyz,verts,scale}.json   32560 entries each
    root/training/rgb/%08d.jpg                    4 versions x 32560 (gs, hom, sample, auto)
    root/evaluation_{K,mano,xyz,verts,scale}.json 3960 entries (labels are public; K and scale suffice)
    root/evaluation/rgb/%08d.jpg

Splits: ``train`` = the training set minus its last ``val_count`` ids (a tenth of a set smaller
than 10 x ``val_count``), ``val`` = those ids (green screen version), ``test`` = the evaluation set. Images are 224 x 224 and the crop is the whole image
(as the official code), augmented at training time. ``version`` picks the training images:
gs | hom | sample | auto (the authors' intent) | all (4 x 32560).

FreiHAND's conventions (its toolbox): OpenCV camera frame, metres; the MANO vector (61) is pose (48,
``flat_hand_mean=False``: fingers relative to ``hands_mean``, as this package), shape (10), the
root's pixel position (2) and a scale (1), with no translation; ``xyz`` in FreiHAND order with tips
744, 320, 443, 555, 672. The reader keeps the pose as it is and puts the translation at the
annotated wrist: ``transl = xyz[0] - J0(betas)`` (``data/mano_labels.py``); that needs the MANO
file (``model.hand_model``).
"""

from __future__ import annotations

from pathlib import Path

from handssca.data.base import DatasetLayoutError, Record, RecordDataset, as_array, load_json, require
from handssca.data.mano_labels import require_hand_model

VERSIONS = ("gs", "hom", "sample", "auto")
TRAIN_SIZE = 32560
#: Fingertip vertices (thumb..pinky) of FreiHAND's ``xyz`` (its toolbox's ``mano_utils``).
FINGERTIPS = "freihand"


class FreiHAND(RecordDataset):
    """FreiHAND through its official files; ``hand_model``: the right MANO :class:`~handssca.hand.HandModel`."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        hand_model=None,
        image_size: int = 224,
        augment: bool = False,
        version: str = "auto",
        seed: int = 0,
        val_count: int = 1000,
    ) -> None:
        mano = require_hand_model(hand_model, "FreiHAND")
        root = require(Path(root), "FreiHAND root folder")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train, val or test; got {split!r}")
        if version not in (*VERSIONS, "all"):
            raise ValueError(f"freihand version: expected one of {VERSIONS + ('all',)}; got {version!r}")
        prefix = "evaluation" if split == "test" else "training"
        K = load_json(root / f"{prefix}_K.json", "camera intrinsics")
        n = len(K)
        labels = {}
        for name, what in (("xyz", "3D joints"), ("verts", "MANO vertices"), ("mano", "MANO parameters")):
            path = root / f"{prefix}_{name}.json"
            if path.exists():
                labels[name] = load_json(path, what)
                if len(labels[name]) != n:
                    raise DatasetLayoutError(
                        f"{path}: expected {n} entries like {prefix}_K.json; found {len(labels[name])}"
                    )
        folder = require(root / prefix / "rgb", "image folder")
        if split == "test":
            ids, versions = list(range(n)), [0] * n
        else:
            held = min(val_count, n // 10)  # 1000 of FreiHAND's 32560; a tenth of a smaller set
            base = list(range(n - held)) if split == "train" else list(range(n - held, n))
            vs = [
                VERSIONS.index(v)
                for v in (
                    VERSIONS if version == "all" and split == "train" else (version if split == "train" else "gs",)
                )
            ]
            ids = [i for _ in vs for i in base]
            versions = [v for v in vs for _ in base]
        records = []
        for i, v in zip(ids, versions):
            where = f"{root / prefix}_*.json entry {i}"
            rec = Record(
                folder / f"{i + v * n:08d}.jpg", as_array(K[i], (3, 3), f"{prefix}_K.json entry {i}"), key=str(i)
            )
            if "xyz" in labels:
                rec.joints_cam = as_array(labels["xyz"][i], (21, 3), f"{prefix}_xyz.json entry {i}")
            if "verts" in labels:
                rec.vertices_cam = as_array(labels["verts"][i], (778, 3), f"{prefix}_verts.json entry {i}")
            if "mano" in labels:
                m = as_array(labels["mano"][i], (1, 61), where).ravel()
                rec.pose, rec.betas = m[:48], m[48:58]
                if rec.joints_cam is not None:
                    rec.root_rest = mano.rest_root(rec.betas)
                    rec.transl = rec.joints_cam[0] - rec.root_rest
            rec.whole_image = True  # no hand crop, as the official code (224 x 224 images)
            records.append(rec)
        if records and not records[0].image.is_file():
            raise DatasetLayoutError(f"{records[0].image}: missing (first image of the {split} split)")
        super().__init__(records, image_size, augment, seed)
