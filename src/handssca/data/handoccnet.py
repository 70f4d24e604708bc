"""HO3D and DexYCB through HandOccNet's released COCO-style annotation files (``data.annotations: handoccnet``).

These are the files the official HandS3C numbers were produced on (spec: official-code.md 4.2-4.3):

    HO3D:    root/annotations/HO3D_{train,evaluation}_data.json, images root/{train,evaluation}/<file_name>
    DexYCB:  root/annotations/DEX_YCB_s0_{train,test}_data.json, images root/<file_name>

Each file is ``{"images": [{id, file_name, width, height}], "annotations": [{id, image_id, ...}]}``.
Annotation fields: ``joints_coord_cam`` (21, 3) metres, OpenCV frame, FreiHAND order;
``cam_param`` {focal (2), princpt (2)}; ``mano_param`` {pose (48), shape (10)}, the pose with its
global orientation in the OpenCV frame and fingers relative to ``hands_mean`` (of the hand's own
side's MANO file), no translation. HO3D's evaluation entries have ``root_joint_cam`` (3) and
``bbox`` (x, y, w, h) instead; DexYCB's have ``joints_img`` (21, 2) pixels and ``hand_type``.

Boxes as the official code: training ``process_bbox(get_bbox(2D joints, 1.5), 1.0)``, entries
whose box is empty skipped; HO3D evaluation ``process_bbox(bbox, 1.5)``; DexYCB test from the GT 2D
joints as in training (the whole image when that box is empty: squared here, where the official
code stretches it). Left DexYCB hands are mirrored to right (image, box, labels, pose) as the
official code does, with the labels converted exactly (``data/mano_labels.py``). ``val`` is the
last ``val_fraction`` of the training file's entries and ``train`` the rest (the official code has
no validation split and trains on the whole file: ``data.val_fraction=0`` does the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handssca.data.base import DatasetLayoutError, Record, RecordDataset, as_array, load_json, require
from handssca.data.dexycb import left_labels
from handssca.data.mano_labels import ManoArrays, require_hand_model
from handssca.data.transforms import bbox_from_points, square_bbox
from handssca.frames import project

FILES = {
    "ho3d": ("HO3D_{}_data.json", {"train": "train", "val": "train", "test": "evaluation"}),
    "dexycb": ("DEX_YCB_s0_{}_data.json", {"train": "train", "val": "train", "test": "test"}),
}


def read_coco(root: Path, dataset: str, split: str, val_fraction: float) -> tuple[Path, list[tuple[dict, dict]]]:
    """(file, [(image entry, annotation entry)]) of a split, in the file's order."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split: expected train, val or test; got {split!r}")
    pattern, names = FILES[dataset]
    path = require(root / "annotations" / pattern.format(names[split]), "HandOccNet annotation file")
    data = load_json(path, "HandOccNet annotation file")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise DatasetLayoutError(f"{path}: expected a COCO-style mapping with 'images' and 'annotations' lists")
    images = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise DatasetLayoutError(f"{path}: images[{k}]: expected id, file_name, width and height")
        images[im["id"]] = im
    pairs = []
    for k, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise DatasetLayoutError(f"{path}: annotations[{k}]: image_id missing or not among the images")
        pairs.append((images[ann["image_id"]], ann))
    if split != "test":
        cut = len(pairs) - int(round(len(pairs) * val_fraction))
        pairs = pairs[:cut] if split == "train" else pairs[cut:]
    return path, pairs


def camera(ann: dict, where: str) -> np.ndarray:
    """K (3, 3) from ``cam_param`` {focal, princpt}."""
    cam = ann.get("cam_param")
    if not isinstance(cam, dict):
        raise DatasetLayoutError(f"{where}: key 'cam_param' missing")
    f = as_array(cam.get("focal"), (2,), f"{where} cam_param.focal")
    c = as_array(cam.get("princpt"), (2,), f"{where} cam_param.princpt")
    return np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])


def mano_param(ann: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    m = ann.get("mano_param")
    if not isinstance(m, dict):
        raise DatasetLayoutError(f"{where}: key 'mano_param' missing")
    return as_array(m.get("pose"), (48,), f"{where} mano_param.pose"), as_array(
        m.get("shape"), (10,), f"{where} mano_param.shape"
    )


def joints_box(joints_px: np.ndarray, width: int, height: int) -> np.ndarray | None:
    """The official training box: ``process_bbox(get_bbox(joints, 1.5), W, H, 1.0)``; None if empty."""
    return square_bbox(bbox_from_points(joints_px, 1.5), (width, height), 1.0)


class HandOccNetHO3D(RecordDataset):
    """HO3D v2 through ``HO3D_{train,evaluation}_data.json``; ``hand_model``: the right MANO model."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        hand_model=None,
        image_size: int = 256,
        augment: bool = False,
        seed: int = 0,
        val_fraction: float = 0.05,
    ) -> None:
        mano = require_hand_model(hand_model, "HO3D (HandOccNet annotations)")
        root = require(Path(root), "HO3D data folder (HandOccNet layout)")
        path, pairs = read_coco(root, "ho3d", split, val_fraction)
        folder = "evaluation" if split == "test" else "train"
        records = []
        for k, (im, ann) in enumerate(pairs):
            where = f"{path.name} annotation {ann.get('id', k)}"
            rec = Record(root / folder / im["file_name"], camera(ann, where), key=str(ann["image_id"]))
            if split == "test":
                rec.root_cam = as_array(ann.get("root_joint_cam"), (3,), f"{where} root_joint_cam")
                rec.bbox = as_array(ann.get("bbox"), (4,), f"{where} bbox")
                rec.bbox_expansion = 1.5
            else:
                rec.joints_cam = as_array(ann.get("joints_coord_cam"), (21, 3), f"{where} joints_coord_cam")
                if joints_box(project(rec.joints_cam, rec.K), im["width"], im["height"]) is None:
                    continue  # as the official loader: no box, no sample
                rec.pose, rec.betas = mano_param(ann, where)
                rec.root_rest = mano.rest_root(rec.betas)
                rec.transl = rec.joints_cam[0] - rec.root_rest
            records.append(rec)
        if records and not records[0].image.is_file():
            raise DatasetLayoutError(f"{records[0].image}: missing (first image of the {split} split)")
        super().__init__(records, image_size, augment, seed)


class HandOccNetDexYCB(RecordDataset):
    """DexYCB s0 through ``DEX_YCB_s0_{train,test}_data.json``. ``hand_model``: the right MANO model;
    ``left_hand_model``: MANO_LEFT.pkl's, needed for left hands (their pose is the left file's)."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        hand_model=None,
        image_size: int = 256,
        augment: bool = False,
        seed: int = 0,
        val_fraction: float = 0.05,
        left_hand_model=None,
    ) -> None:
        right = require_hand_model(hand_model, "DexYCB (HandOccNet annotations)")
        left = ManoArrays.of(left_hand_model) if left_hand_model is not None else None
        root = require(Path(root), "DexYCB data folder (HandOccNet layout)")
        path, pairs = read_coco(root, "dexycb", split, val_fraction)
        records = []
        for k, (im, ann) in enumerate(pairs):
            where = f"{path.name} annotation {ann.get('id', k)}"
            joints = as_array(ann.get("joints_coord_cam"), (21, 3), f"{where} joints_coord_cam")
            joints_px = as_array(ann.get("joints_img"), (21, 2), f"{where} joints_img")
            if split != "test" and joints_box(joints_px, im["width"], im["height"]) is None:
                continue
            side = ann.get("hand_type")
            if side not in ("right", "left"):
                raise DatasetLayoutError(f"{where}: hand_type: expected right or left; got {side!r}")
            pose, betas = mano_param(ann, where)
            if side == "left":
                if left is None:
                    raise DatasetLayoutError(
                        f"{where}: a left hand; its MANO pose needs MANO_LEFT.pkl "
                        f"(config key data.hand_model_left, or MANO_LEFT.pkl beside model.hand_model)"
                    )
                wrist_transl = joints[0] - left.rest_root(betas)  # the file has no translation: the wrist gives it
                pose, betas_r, transl, root_rest = left_labels(
                    pose[:3], left.hands_mean + pose[3:], betas, wrist_transl, left, right
                )
            else:
                betas_r, root_rest = betas, right.rest_root(betas)
                transl = joints[0] - root_rest
            records.append(
                Record(
                    root / im["file_name"],
                    camera(ann, where),
                    joints_cam=joints,
                    joints_px=joints_px,
                    pose=pose,
                    betas=betas_r,
                    transl=transl,
                    root_rest=root_rest,
                    hand_side=side,
                    key=str(ann["image_id"]),
                    submission_id=int(ann["image_id"]),
                )
            )
        if records and not records[0].image.is_file():
            raise DatasetLayoutError(f"{records[0].image}: missing (first image of the {split} split)")
        super().__init__(records, image_size, augment, seed)
