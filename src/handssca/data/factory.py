"""Build the dataset a configuration asks for, with the hand model its labels need."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from handssca.config import ANNOTATIONS, DATASETS


def left_model_path(cfg) -> Path | None:
    """``data.hand_model_left``, else ``MANO_LEFT.pkl`` (any RIGHT -> LEFT in the name) beside
    ``model.hand_model`` when that file exists, else None."""
    if cfg.data.hand_model_left:
        return Path(cfg.data.hand_model_left)
    if not cfg.model.hand_model:
        return None
    right = Path(cfg.model.hand_model)
    name = right.name.replace("RIGHT", "LEFT").replace("Right", "Left").replace("right", "left")
    if name == right.name:
        return None
    left = right.with_name(name)
    return left if left.is_file() else None


def dataset_hand_models(cfg, hand_model=None):
    """(right, left or None) :class:`~handssca.hand.HandModel` for a real dataset's labels.

    ``hand_model`` (the network's, to load the file once) or ``model.hand_model`` in float64. A
    dataset of MANO labels needs the MANO file: the built-in hand has its own pose and shape spaces,
    so converting MANO labels with it gives wrong poses; that is an error naming the key.
    """
    import torch

    from handssca.hand import HandModel

    if hand_model is None and cfg.model.hand_model:
        hand_model = HandModel.from_file(cfg.model.hand_model, side="right", dtype=torch.float64)
    if hand_model is None or hand_model.is_default:
        raise ValueError(
            f"model.hand_model: the {cfg.data.dataset} labels are MANO parameters; give the MANO file "
            f"(model.hand_model=/path/to/MANO_RIGHT.pkl); the built-in hand has other pose and shape spaces"
        )
    left = None
    if cfg.data.dataset == "dexycb":
        path = left_model_path(cfg)
        if path is not None:
            left = HandModel.from_file(path, side="left", fix_left_shapedirs=False, dtype=torch.float64)
    return hand_model, left


def build_dataset(cfg, split: str, train: bool = False, hand_model=None) -> Dataset:
    """The dataset of ``cfg.data`` for ``split``, cropped to ``cfg.model.input_size``; ``train`` enables augmentation
    (unless ``data.augment`` is false). ``hand_model``: the right :class:`~handssca.hand.HandModel` that
    converts a real dataset's MANO labels (default: loaded from ``model.hand_model``)."""
    d = cfg.data
    size = cfg.model.input_size
    train = train and d.augment
    if d.dataset == "synthetic":
        from handssca.data.synthetic import SyntheticHands

        n = {"train": d.train_size, "val": d.val_size, "test": d.test_size}.get(split, d.test_size)
        return SyntheticHands(
            split if split in ("train", "val", "test") else "test",
            n,
            d.seed,
            size,
            cfg.model.hand_model,
            augment=train,
            renderer=d.renderer,
            max_occluders=d.synthetic_max_occluders,
            max_tilt_deg=d.synthetic_max_tilt_deg,
            max_roll_deg=d.synthetic_max_roll_deg,
        )
    if d.dataset not in DATASETS:
        raise ValueError(f"data.dataset: expected one of {DATASETS}; got {d.dataset!r}")
    if d.annotations not in ANNOTATIONS:
        raise ValueError(f"data.annotations: expected one of {ANNOTATIONS}; got {d.annotations!r}")
    if d.annotations == "handoccnet" and d.dataset == "freihand":
        raise ValueError(
            "data.annotations: 'handoccnet' exists for ho3d and dexycb; FreiHAND is read from its official files"
        )
    if d.root is None:
        raise ValueError(f"data.root: dataset {d.dataset!r} needs the folder of its {d.annotations} layout")
    if not Path(d.root).exists():
        from handssca.data.base import DatasetLayoutError

        raise DatasetLayoutError(f"{d.root}: missing (data.root: the {d.dataset} folder)")
    right, left = dataset_hand_models(cfg, hand_model)
    if d.dataset == "freihand":
        from handssca.data.freihand import FreiHAND

        return FreiHAND(d.root, split, right, size, augment=train, version=d.freihand_version, seed=d.seed)
    if d.annotations == "handoccnet":
        from handssca.data.handoccnet import HandOccNetDexYCB, HandOccNetHO3D

        if d.dataset == "ho3d":
            return HandOccNetHO3D(d.root, split, right, size, augment=train, seed=d.seed, val_fraction=d.val_fraction)
        return HandOccNetDexYCB(
            d.root, split, right, size, augment=train, seed=d.seed, left_hand_model=left, val_fraction=d.val_fraction
        )
    if d.dataset == "ho3d":
        from handssca.data.ho3d import HO3D

        return HO3D(
            d.root, split, right, size, augment=train, version=d.version, seed=d.seed, val_fraction=d.val_fraction
        )
    from handssca.data.dexycb import DexYCB

    return DexYCB(d.root, split, right, size, augment=train, seed=d.seed, left_hand_model=left)
