"""The checkpoint format in one place: what a checkpoint holds, writing it, reading it, and the
network it stores.

Layout: ``{"format": "handssca-checkpoint", "version": 1, "config": {"model": {...}, ...},
"model": state_dict, "hand_model": identity, ...}``; a training checkpoint adds ``optimizer``,
``epoch``, ``batches_done``, ``step``, ``rng``, ``history``, ``best`` and ``world_size``
(engine/trainer.py) and stores the whole run's config. Reading is ``torch.load(weights_only=True)``;
writing is atomic (model/files.py).

``hand_model`` is the identity of the hand model the network was trained with
(:mod:`handssca.hand.identity`: name, content hash, side, flat-hand mean, default or not); the
model's arrays never enter a checkpoint. Reading a network back loads that same model
(:func:`model_from_checkpoint`). Checkpoints written before the identity was recorded are read as
:func:`recorded_hand_model` says.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from handssca.hand.identity import check_identity, load_identified
from handssca.messages import first_line
from handssca.model.files import load_torch_file, save_torch_file
from handssca.model.handssca import HandSSCA, build_model

CHECKPOINT_FORMAT = "handssca-checkpoint"


def checkpoint_dict(model: HandSSCA, config: dict | None = None, **extra) -> dict:
    """The checkpoint layout: {format, version, config, model: state_dict, hand_model: the identity of
    ``model.hand``, ...extra}. ``config``: the run's whole config as a dict (training); by default
    ``{"model": model.config}``."""
    config = {"model": asdict(model.config)} if config is None else config
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "config": config,
        "model": model.state_dict(),
        "hand_model": model.hand.identity(),
        **extra,
    }


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write a checkpoint atomically (temporary file + rename): a crash never leaves a half file, and a
    full disk raises ``OSError`` naming the file, keeping the previous one."""
    return save_torch_file(path, payload)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a handssca checkpoint safely (``weights_only=True``) and check its layout."""
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        hint = (
            " (an official HandS3C checkpoint? use `handssca convert-official`)"
            if isinstance(ckpt, dict) and "network" in ckpt
            else ""
        )
        raise ValueError(f"{path}: not a handssca checkpoint{hint}")
    config = ckpt.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(
            f"{path}: checkpoint without its 'config' (expected config.model, the settings that built the network)"
        )
    if not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"{path}: checkpoint without its 'model' weights")
    if "hand_model" in ckpt:
        check_identity(ckpt["hand_model"], f"{path}: key 'hand_model'")
    return ckpt


#: The identity read for a checkpoint written before identities were recorded whose config names no
#: hand-model file: the network was trained with the default hand (the only one without a file).
_OLD_DEFAULT = {
    "name": "handssca default hand (right)",
    "sha256": None,
    "side": "right",
    "flat_hand_mean": False,
    "default": True,
}


def recorded_hand_model(ckpt: dict, path: str | os.PathLike) -> dict:
    """The identity of the hand model a checkpoint (read with :func:`read_checkpoint`) was trained with.

    A checkpoint written before identities were recorded has none; it is read from what it has:
    ``config.model.hand_model`` set -> that MANO file, unverified (``sha256`` None, side from the file);
    empty -> the default hand, except for a checkpoint imported by ``convert-official`` (it has a
    ``source``): the authors' weights were trained with MANO, so their file is needed, unverified."""
    if "hand_model" in ckpt:
        return check_identity(ckpt["hand_model"], f"{path}: key 'hand_model'")
    recorded = ckpt["config"]["model"].get("hand_model")
    if recorded:
        return {
            "name": Path(str(recorded)).name,
            "sha256": None,
            "side": None,
            "flat_hand_mean": False,
            "default": False,
        }
    if "source" in ckpt:
        return {"name": "MANO_RIGHT.pkl", "sha256": None, "side": "right", "flat_hand_mean": False, "default": False}
    return dict(_OLD_DEFAULT)


def load_weights(model: nn.Module, state: dict, path: str | os.PathLike, what: str = "weights") -> None:
    """``model.load_state_dict(state)`` (strict); keys or shapes that do not fit raise one line naming the file."""
    own = model.state_dict()
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{path}: {what}: {len(not_tensors)} entries are not tensors, e.g. {not_tensors[:3]}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{path}: {what} do not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape mismatches {shapes[:3]} ({len(missing)}, {len(unexpected)}, {len(shapes)} in all)"
        )
    model.load_state_dict(state)


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike, hand_model: str | os.PathLike | None = None) -> HandSSCA:
    """The network of a checkpoint already read with :func:`read_checkpoint` (in eval mode, on the CPU),
    with the hand model it was trained with (:func:`handssca.hand.identity.load_identified`).

    ``hand_model``: that model's file, when it is a MANO file (checked against the recorded content
    hash); None: the default hand for a default-hand checkpoint, else the file at the path recorded
    in ``config.model.hand_model`` when it is there and matches. ValueError naming ``--hand-model``
    when the file is needed and missing, naming both models when it is another model. The network's
    ``config.hand_model`` is the file used (None for the default hand)."""
    cfg = dict(ckpt["config"]["model"])
    hand, used = load_identified(recorded_hand_model(ckpt, path), hand_model, cfg.get("hand_model"), str(path))
    cfg["hand_model"] = used
    try:
        model = build_model(cfg, hand)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its config.model does not build a network ({first_line(str(e))})") from None
    load_weights(model, ckpt["model"], path)
    return model.eval()


def load_model(
    path: str | os.PathLike, hand_model: str | os.PathLike | None = None, map_location: str | torch.device = "cpu"
) -> HandSSCA:
    """Rebuild the network stored in a checkpoint, with the hand model it was trained with (see
    :func:`model_from_checkpoint`; ``hand_model``: that model's MANO file)."""
    return model_from_checkpoint(read_checkpoint(path), path, hand_model).to(map_location)
