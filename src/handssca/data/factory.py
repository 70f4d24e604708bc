"""Build the dataset a configuration asks for."""

from __future__ import annotations

from torch.utils.data import Dataset

DATASETS = ("synthetic", "freihand", "ho3d", "dexycb")


def build_dataset(cfg, split: str, train: bool = False) -> Dataset:
    """The dataset of ``cfg.data`` for ``split``, cropped to ``cfg.model.input_size``; ``train`` enables augmentation
    (unless ``data.augment`` is false)."""
    d = cfg.data
    size = cfg.model.input_size
    train = train and d.augment
    if d.dataset == "synthetic":
        from handssca.data.synthetic import SyntheticHands

        n = {"train": d.train_size, "val": d.val_size, "test": d.test_size}.get(split, d.test_size)
        return SyntheticHands(split if split in ("train", "val", "test") else "test", n, d.seed, size,
                              cfg.model.hand_model, augment=train, renderer=d.renderer,
                              max_occluders=d.synthetic_max_occluders, max_tilt_deg=d.synthetic_max_tilt_deg,
                              max_roll_deg=d.synthetic_max_roll_deg)  # fmt: skip
    if d.root is None:
        raise ValueError(f"data.root: dataset {d.dataset!r} needs the folder of its official layout")
    if d.dataset == "freihand":
        from handssca.data.freihand import FreiHAND

        return FreiHAND(d.root, split, size, augment=train, version=d.freihand_version, seed=d.seed)
    if d.dataset == "ho3d":
        from handssca.data.ho3d import HO3D

        return HO3D(d.root, split, size, augment=train, version=d.version, seed=d.seed)
    if d.dataset == "dexycb":
        from handssca.data.dexycb import DexYCB

        return DexYCB(d.root, split, size, augment=train, seed=d.seed)
    raise ValueError(f"data.dataset: expected one of {DATASETS}; got {d.dataset!r}")
