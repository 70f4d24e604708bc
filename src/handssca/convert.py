"""Import checkpoints of the authors' official code (HandS3C) into this package's layout."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from handssca.hand import HandModel
from handssca.model.checkpoint import checkpoint_dict, load_weights, save_checkpoint
from handssca.model.files import load_torch_file
from handssca.model.handssca import ModelConfig, build_model

log = logging.getLogger("handssca.convert")

_S3C_KEYS = re.compile(
    r"^(ln_1\.(weight|bias)|self_attention\.(in_proj\.weight|conv2d\.(weight|bias)|out_norm\.(weight|bias)|"
    r"out_proj\.weight|(x_proj_weight|dt_projs_weight|dt_projs_bias|A_logs|Ds)(_ch)?))$"
)
_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^backbone\.layer0\.0\.(.*)$"), r"backbone.conv1.\1"),
    (re.compile(r"^backbone\.layer0\.1\.(.*)$"), r"backbone.bn1.\1"),
    (re.compile(r"^backbone\.layer([1-4])\.0\.(\d+\..*)$"), r"backbone.layer\1.\2"),
    (re.compile(r"^backbone\.((toplayer|latlayer[1-3]|smooth3)\.(weight|bias))$"), r"backbone.\1"),
    (re.compile(r"^regressor\.((hand_regHead|hand_Encoder|mano_regHead)\..*)$"), r"regressor.\1"),
]
_DROPPED = (re.compile(r"^regressor\.mano_regHead\.mano_layer\."), re.compile(r"^regressor\.hand_regHead\.(uu|vv)$"))


def convert_official_state_dict(
    state_dict: dict[str, torch.Tensor], submodule: str | None = None
) -> dict[str, torch.Tensor]:
    """Official HandS3C keys (with or without ``module.``) -> handssca keys; unknown keys raise.

    With ``submodule="S3C"`` the input holds the official S3C block alone (``ln_1.weight``,
    ``self_attention.x_proj_weight`` ...) and the result loads into :class:`handssca.model.SSCA`.
    MANO buffers stored in official checkpoints and the soft-argmax grids are dropped with a notice.
    """
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    dropped: list[str] = []
    for key, value in state_dict.items():
        k = key.removeprefix("module.")
        if submodule == "S3C":
            k = k.removeprefix("S3C.")
            if _S3C_KEYS.match(k):
                out[k] = value
            else:
                unknown.append(key)
            continue
        if submodule is not None:
            raise ValueError(f"submodule: expected None or 'S3C'; got {submodule!r}")
        if any(p.match(k) for p in _DROPPED):
            dropped.append(key)
            continue
        if k.startswith("S3C."):
            rest = k[len("S3C.") :]
            if not _S3C_KEYS.match(rest):
                unknown.append(key)
            else:
                out["block." + rest] = value
            continue
        for pattern, repl in _RULES:
            if pattern.match(k):
                out[pattern.sub(repl, k)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"official state dict: {len(unknown)} keys this converter does not know: {unknown[:8]}")
    if any("mano_layer" in k for k in dropped):
        log.warning(
            "ignored the MANO layer buffers stored in the official checkpoint (the hand model is loaded separately)"
        )
    return out


def infer_config(state: dict[str, torch.Tensor], input_size: int | None = None) -> ModelConfig:
    """Block type and input size from converted keys (W of the channel branch fixes the input size)."""
    if "block.self_attention.x_proj_weight_ch" in state:
        block = "ssca"
        width = state["block.self_attention.x_proj_weight_ch"].shape[-1]
        if input_size is None:
            input_size = width * 8
        elif input_size != width * 8:
            raise ValueError(
                f"--input-size {input_size} does not match the checkpoint: its channel branch has "
                f"W={width}, i.e. input size {width * 8}"
            )
    elif "block.self_attention.x_proj_weight" in state:
        block = "ssa"
    else:
        block = "none"
    # without the channel branch nothing in the weights depends on the input size
    return ModelConfig(input_size=input_size or 256, block=block).validate()


#: The hand-model identity a converted checkpoint records when no MANO file is given: the authors trained
#: with the right MANO model (flat_hand_mean=False), whose file handssca cannot check without having it.
OFFICIAL_HAND = {"name": "MANO_RIGHT.pkl", "sha256": None, "side": "right", "flat_hand_mean": False, "default": False}


def convert_official_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    input_size: int | None = None,
    hand_model: str | os.PathLike | None = None,
) -> Path:
    """Read an official ``{'epoch','network','optimizer'}`` file and write a handssca checkpoint.

    The official networks were trained with MANO: ``hand_model`` (``MANO_RIGHT.pkl``) is recorded with
    its content hash, so that every later use checks the file it gets; without it the checkpoint
    records :data:`OFFICIAL_HAND` (no hash), and every use needs ``--hand-model``, taken unverified
    with a warning."""
    src = Path(src)
    ckpt = load_torch_file(src, "official HandS3C checkpoint")
    state = ckpt.get("network") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(
            f"{src}: expected an official checkpoint {{'epoch', 'network', 'optimizer'}}; key 'network' missing"
        )
    converted = convert_official_state_dict(state)
    config = infer_config(converted, input_size)
    hand = None
    if hand_model is not None:
        config.hand_model = str(hand_model)
        hand = HandModel.from_file(hand_model)
    model = build_model(config, hand)
    load_weights(model, converted, src, f"weights (read as a {config.block} model at {config.input_size})")
    payload = checkpoint_dict(model, source=str(src.name), epoch=ckpt.get("epoch"))
    if hand_model is None:
        payload["hand_model"] = dict(OFFICIAL_HAND)
    return save_checkpoint(dst, payload)
