"""The shared part of the real-dataset readers: records -> samples through the common crop pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from handssca.data.sample import make_sample
from handssca.data.transforms import Augment, AugmentConfig, bbox_from_points, sample_augment, square_bbox
from handssca.frames import (
    mirror_box,
    mirror_image,
    mirror_intrinsics,
    mirror_pixels,
    mirror_points,
    mirror_pose,
    project,
    whole_image_box,
)
from handssca.io.images import ImageReadError, read_image


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the official layout, or one of its files is malformed."""


@dataclass
class Record:
    """One annotated hand in an original image (package conventions: metres, OpenCV, FreiHAND order).

    MANO labels follow the sample contract: ``hand(pose, betas) + transl`` is the hand in this
    image's camera frame, ``hand`` being the configured right model for a right hand and its exact
    mirror for a left one (the dataset step mirrors left hands, labels included, to right).
    """

    image: Path
    K: np.ndarray
    joints_cam: np.ndarray | None = None  # (21, 3)
    vertices_cam: np.ndarray | None = None  # (V, 3)
    joints_px: np.ndarray | None = None  # (21, 2); projected from joints_cam when None
    pose: np.ndarray | None = None  # (48) relative to hands_mean
    betas: np.ndarray | None = None
    transl: np.ndarray | None = None  # (3) m: hand(pose, betas) + transl = the hand in the camera frame
    root_rest: np.ndarray | None = None  # (3) m: rest wrist J0(betas) of the right model (kept when mirrored)
    bbox: np.ndarray | None = None  # (x, y, w, h) given by the dataset
    bbox_expansion: float = 1.5
    whole_image: bool = False  # crop = the whole (square) image, as the official FreiHAND code
    hand_side: str = "right"
    root_cam: np.ndarray | None = None  # (3) GT wrist given with an evaluation split (HO3D)
    key: str = ""
    submission_id: int | None = None  # the benchmark's id of this sample (DexYCB: the toolkit's index in the split)


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetLayoutError(f"{path}: missing ({what})")
    return path


def load_json(path: Path, what: str):
    require(path, what)
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetLayoutError(f"{path}: malformed JSON ({e})") from None


def as_array(value, shape: tuple, where: str) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetLayoutError(f"{where}: expected numbers of shape {shape}") from None
    if a.shape != shape and a.size == int(np.prod(shape)):
        a = a.reshape(shape)
    if a.shape != shape:
        raise DatasetLayoutError(f"{where}: expected shape {shape}; found {a.shape}")
    return a


def crop_box(r: Record, width: int, height: int) -> np.ndarray:
    """The square crop box (x, y, w, h) of a record in its image, as the official code makes it:
    the whole image (FreiHAND), the dataset's box through ``process_bbox(box, expansion)``, or
    ``get_bbox(2D joints, 1.5)`` through ``process_bbox(.., 1.0)``; the whole image if that is empty."""
    joints_px = (
        r.joints_px if r.joints_px is not None else (project(r.joints_cam, r.K) if r.joints_cam is not None else None)
    )
    box = None
    if r.whole_image:
        box = square_bbox(whole_image_box(width, height))
    elif r.bbox is not None:
        box = square_bbox(r.bbox, (width, height), r.bbox_expansion)
    elif joints_px is not None:
        box = square_bbox(bbox_from_points(joints_px, 1.5), (width, height), 1.0)
    return box if box is not None else square_bbox(whole_image_box(width, height))


def mirror_record(image: np.ndarray, r: Record) -> tuple[np.ndarray, Record]:
    """Flip a left-hand image and its labels to a right hand (u -> W - 1 - u, x -> -x, pose mirrored)."""
    w = image.shape[1]
    flip = lambda a: None if a is None else mirror_points(a)  # noqa: E731
    out = replace(
        r,
        K=mirror_intrinsics(r.K, w),
        joints_cam=flip(r.joints_cam),
        vertices_cam=flip(r.vertices_cam),
        transl=flip(r.transl),
        root_cam=flip(r.root_cam),
        pose=None if r.pose is None else mirror_pose(r.pose),
        bbox=None if r.bbox is None else mirror_box(r.bbox, w),
        joints_px=None if r.joints_px is None else mirror_pixels(r.joints_px, w),
    )
    return mirror_image(image), out


class RecordDataset(Dataset):
    """A list of :class:`Record` served through the common crop/augment pipeline.

    The readers built on it share one constructor signature, ``(root, split, hand_model, image_size,
    augment, seed, ...)``, so that ``data/factory.py`` builds any of them alike; their signatures and
    the checks that open them are alike on purpose (the ``duplicates`` tool lists them).
    """

    def __init__(
        self, records: list[Record], image_size: int, augment: bool, seed: int = 0, num_vertices: int = 778
    ) -> None:
        self.records, self.image_size, self.augment, self.seed = records, image_size, augment, seed
        self.num_vertices = num_vertices
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        try:
            image = read_image(r.image).astype(np.float32) / 255.0
        except ImageReadError as e:
            raise DatasetLayoutError(str(e)) from None
        h, w = image.shape[:2]
        box = crop_box(r, w, h)  # made in the original image, then flipped with it (the official order)
        if r.hand_side == "left":
            image, r = mirror_record(image, r)
            box = mirror_box(box, w)
        joints_px = (
            r.joints_px
            if r.joints_px is not None
            else (project(r.joints_cam, r.K) if r.joints_cam is not None else None)
        )
        rng = np.random.default_rng([self.seed, int(index), self.epoch])
        aug = sample_augment(rng, AugmentConfig()) if self.augment else Augment()
        sample = make_sample(
            image,
            box,
            self.image_size,
            aug,
            K=r.K,
            joints_img_px=joints_px,
            joints_cam=r.joints_cam,
            vertices_cam=r.vertices_cam,
            pose=r.pose,
            betas=r.betas,
            transl=r.transl,
            root_rest=r.root_rest,
            num_vertices=self.num_vertices,
            hand_side=r.hand_side,
            index=index,
        )
        sample["root_cam"] = (r.root_cam if r.root_cam is not None else np.zeros(3)).astype(np.float32)
        return sample
