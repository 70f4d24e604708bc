"""Experiment configuration: dataclasses loaded from YAML with dotted command-line overrides.

The bottom layer of the package's flow: it imports nothing from it (the model, the data and the
engine read these dataclasses).

A YAML file has the sections ``model``, ``data``, ``train`` and ``eval`` (and an optional ``name``
and ``base``: another YAML, relative to this one, whose values this file overrides). Unknown keys
are errors that list the valid ones. Sizes derived from the input size are never typed twice: the
data pipeline's crop size is ``model.input_size``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

#: The datasets a config can name, and the annotation files of the real ones.
DATASETS = ("synthetic", "freihand", "ho3d", "dexycb")
ANNOTATIONS = ("official", "handoccnet")
#: The block between backbone and regressor (the paper's ablations) and the ResNet trunks (model/backbone.py).
BLOCKS = ("none", "self_attention", "ssa", "ssca")
BACKBONES = ("resnet18", "resnet34", "resnet50")


@dataclass
class ModelConfig:
    """What builds a HandSSCA network. Every derived size comes from ``input_size``."""

    input_size: int = 256
    backbone: str = "resnet50"
    block: str = "ssca"
    hourglass_depth: int = 2
    scan_backend: str = "auto"
    hand_model: str | None = None  # a MANO file; None = the built-in license-free hand
    # "official": the authors' regressor init (conv N(0, 1e-3), linear N(0, 1e-2)), which starts from random
    # finger rotations; "mean_pose": the same with the pose output's bias set to identity rotations, so the
    # network starts at the mean hand (useful for short runs; not in the official code)
    init: str = "official"

    @property
    def feature_size(self) -> int:
        """Side of the backbone's output map and of the heatmaps: input_size / 8 (32 at 256, 28 at 224)."""
        return self.input_size // 8

    def validate(self) -> ModelConfig:
        if self.input_size % 8 or not 128 <= self.input_size <= 376:
            raise ValueError(f"model.input_size: expected a multiple of 8 in [128, 376]; got {self.input_size}")
        if self.feature_size % (2**self.hourglass_depth):
            raise ValueError(
                f"model.hourglass_depth: {self.hourglass_depth} needs input_size/8 divisible by "
                f"{2**self.hourglass_depth}; input_size/8 = {self.feature_size}"
            )
        if self.block not in BLOCKS:
            raise ValueError(f"model.block: expected one of {BLOCKS}; got {self.block!r}")
        if self.init not in ("official", "mean_pose"):
            raise ValueError(f"model.init: expected 'official' or 'mean_pose'; got {self.init!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"model.backbone: expected one of {BACKBONES}; got {self.backbone!r}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"model config: unknown keys {unknown}; valid keys are {sorted(names)}")
        return cls(**d).validate()


LOSS_WEIGHTS = {
    "vertices": 1e4,
    "joints": 1e4,
    "pose": 10.0,
    "shape": 0.1,
    "joints_img": 100.0,
    "articulation": 0.0,
    "heatmaps": 0.0,
}


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic | freihand | ho3d | dexycb
    root: str | None = None  # dataset folder (official layout)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    train_size: int = 2000  # synthetic only: samples per epoch
    val_size: int = 200  # synthetic only; for real datasets: validation subset size (0 = all)
    test_size: int = 500  # synthetic only
    seed: int = 0
    num_workers: int = 2
    renderer: str = "auto"  # synthetic: gl | numpy | auto
    augment: bool = True  # train-time augmentation (the official scale / rotation / colour ranges)
    synthetic_max_occluders: int = 3  # synthetic: 0-N occluders per image
    synthetic_max_tilt_deg: float = 180.0  # synthetic: 180 = any orientation, else palm/back to camera +- this
    synthetic_max_roll_deg: float = 180.0  # synthetic, with max_tilt < 180: in-plane angle +- this (180 = any)
    version: str = "v2"  # ho3d: v2 | v3
    annotations: str = "official"  # ho3d, dexycb: official (the datasets' own files) | handoccnet (HandOccNet's JSONs)
    hand_model_left: str | None = None  # dexycb left hands: MANO_LEFT.pkl (default: beside model.hand_model)
    val_fraction: float = (
        0.05  # ho3d, handoccnet files: the tail of the training list held out as val (0 = train on all)
    )
    freihand_version: str = "auto"  # freihand training images: gs | hom | sample | auto


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    lr_milestones: list[int] = field(default_factory=lambda: list(range(10, 100, 10)))
    lr_factor: float = 0.7
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(LOSS_WEIGHTS))
    grad_accum: int = 1
    amp: bool = False  # bf16 autocast on CUDA or CPU (the scan and the hand layer stay float32)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    out_dir: str = "runs/default"
    checkpoint_every: int = 10  # also keep epoch_N.pt every N epochs
    log_every: int = 10  # steps between TensorBoard scalars
    image_every: int = 200  # steps between TensorBoard pictures
    max_steps: int | None = None  # stop after this many optimiser steps (whole run)
    time_budget_s: float | None = None  # stop training after this many seconds
    backbone_weights: str | None = None  # torchvision ResNet state dict file to start from
    freeze_bn: bool = False  # keep BatchNorm in eval mode (small batches, exact DDP equivalence)
    tensorboard: bool = True


@dataclass
class EvalConfig:
    batch_size: int = 64
    split: str = "test"


@dataclass
class Config:
    name: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


class ConfigError(ValueError):
    """A configuration file or override is invalid."""


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "loss_weights" else v
        )
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    base = data.pop("base", None)
    if base is not None:
        data = _merge(_read_yaml((path.parent / base), seen + (path.resolve(),)), data)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.batch_size=32`` -> (["train", "batch_size"], 32); values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 and parts[0] != "name":
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. train.batch_size=32")
    try:
        return parts, yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to a field's annotated type (YAML reads 1e-3 as a string)."""
    import types
    import typing

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {tp}; got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list; got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping; got {value!r}")
        _, vt = typing.get_args(tp)
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false; got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer; got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number; got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string; got {value!r}")
    return value


def build_config(data: dict, source: str = "config") -> Config:
    """Config from a nested dict; unknown sections or keys raise :class:`ConfigError` listing valid ones."""
    data = dict(data)
    name = data.pop("name", "default")
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown sections {unknown}; valid sections are {sorted(_SECTIONS)} and 'name'")
    sections = {}
    for sec, cls in _SECTIONS.items():
        values = data.get(sec) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {sec!r} must be a mapping")
        valid = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - valid)
        if bad:
            raise ConfigError(
                f"{source}: unknown keys {[f'{sec}.{b}' for b in bad]}; valid keys in {sec!r} are {sorted(valid)}"
            )
        import typing

        hints = typing.get_type_hints(cls)
        values = {k: _coerce(v, hints[k], f"{source}: {sec}.{k}") for k, v in values.items()}
        if sec == "train" and "loss_weights" in values:  # terms not given keep the paper's weights
            values["loss_weights"] = {**LOSS_WEIGHTS, **values["loss_weights"]}
        sections[sec] = cls(**values)
    cfg = Config(name=str(name), **sections)
    try:
        cfg.model.validate()
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    unknown_w = sorted(set(cfg.train.loss_weights) - set(LOSS_WEIGHTS))
    if unknown_w:
        raise ConfigError(f"{source}: unknown train.loss_weights {unknown_w}; valid are {sorted(LOSS_WEIGHTS)}")
    problems = validate_values(cfg)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return cfg


#: Lower bounds of the numeric settings (key: (bound, inclusive)); None values are allowed where the type says so.
_BOUNDS = {
    "train.epochs": (1, True),
    "train.batch_size": (1, True),
    "train.grad_accum": (1, True),
    "train.lr": (0, False),
    "train.lr_factor": (0, False),
    "train.checkpoint_every": (0, True),
    "train.log_every": (1, True),
    "train.image_every": (0, True),
    "train.max_steps": (1, True),
    "train.time_budget_s": (0, False),
    "eval.batch_size": (1, True),
    "data.num_workers": (0, True),
    "data.train_size": (1, True),
    "data.val_size": (0, True),
    "data.test_size": (1, True),
    "data.synthetic_max_occluders": (0, True),
    "data.synthetic_max_tilt_deg": (0, True),
    "data.synthetic_max_roll_deg": (0, True),
}


def validate_values(cfg: Config) -> list[str]:
    """Every value problem of a config (before any model or data is built): counts that must be positive,
    choices, non-negative loss weights. Returns one message per problem, naming the key."""
    flat = flatten(cfg.to_dict())
    out = []
    for key, (low, inclusive) in _BOUNDS.items():
        v = flat.get(key)
        if v is None:
            continue
        if not math.isfinite(v) or (v < low if inclusive else v <= low):
            out.append(f"{key}: expected a number {'>=' if inclusive else '>'} {low}; got {v!r}")
    for k, w in cfg.train.loss_weights.items():
        if not math.isfinite(w) or w < 0:
            out.append(f"train.loss_weights.{k}: expected a finite weight >= 0; got {w!r}")
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        out.append(f"data.val_fraction: expected a fraction in [0, 1); got {cfg.data.val_fraction!r}")
    if any(m < 0 for m in cfg.train.lr_milestones):
        out.append(f"train.lr_milestones: expected epochs >= 0; got {cfg.train.lr_milestones}")
    choices = {
        "data.dataset": DATASETS,
        "data.renderer": ("auto", "gl", "numpy"),
        "data.version": ("v2", "v3"),
        "data.annotations": ANNOTATIONS,
        "data.freihand_version": ("gs", "hom", "sample", "auto", "all"),
        "train.device": ("auto", "cpu", "cuda"),
    }
    for key, valid in choices.items():
        v = flat[key]
        if v not in valid and not (key == "train.device" and str(v).startswith("cuda:")):
            out.append(f"{key}: expected one of {list(valid)}; got {v!r}")
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1} (loss_weights flattened too)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


#: Settings that may change on ``--resume`` without breaking the exact continuation.
RESUME_SAFE = (
    "name",
    "train.epochs",
    "train.max_steps",
    "train.time_budget_s",
    "train.out_dir",
    "train.checkpoint_every",
    "train.log_every",
    "train.image_every",
    "train.tensorboard",
    "train.backbone_weights",
    "data.num_workers",
    "data.root",
    "eval.batch_size",
    "eval.split",
    "model.hand_model",
    "data.hand_model_left",
)


def resume_differences(stored: dict, current: Config) -> list[str]:
    """The settings of ``current`` that differ from a checkpoint's stored config and break an exact
    resume (data, batch size, model, optimiser, schedule, seeds ...), as 'key: stored -> now'."""
    defaults = flatten(Config().to_dict())
    old, new = flatten(stored), flatten(current.to_dict())
    old = {**{k: v for k, v in defaults.items() if k in new}, **old}  # a key added since the checkpoint: its default
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RESUME_SAFE or old.get(key, "<absent>") == new.get(key, "<absent>"):
            continue
        out.append(f"{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return out


def packaged_config(name: str) -> Path:
    """Path of a config shipped inside the package (``configs/<name>.yaml``)."""
    from importlib import resources

    return Path(str(resources.files("handssca") / "configs" / f"{name}.yaml"))


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A file path as given, or the name of a shipped config (``demo``, ``ho3d`` ...)."""
    p = Path(path)
    if p.is_file() or p.suffix or len(p.parts) > 1:
        return p
    shipped = packaged_config(str(path))
    return shipped if shipped.is_file() else p


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (a path or a shipped config's name; defaults when None) and apply dotted overrides."""
    if path is not None:
        path = resolve_config_path(path)
    data = _read_yaml(Path(path)) if path is not None else {}
    return build_config(apply_overrides(data, overrides), str(path) if path else "config")


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Dotted ``section.key=value`` overrides applied to a nested config dict (in place; returned)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return data
