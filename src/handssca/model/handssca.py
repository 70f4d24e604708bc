"""The HandSSCA network: backbone -> block (none / self-attention / SSA / SSCA) -> regressor -> hand layer."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from handssca.config import BLOCKS, ModelConfig
from handssca.hand import HandModel
from handssca.model.attention import SelfAttentionBlock
from handssca.model.backbone import FPNBackbone
from handssca.model.files import first_line, load_torch_file, save_torch_file
from handssca.model.regressor import Regressor
from handssca.model.ssca import SSCA

CHECKPOINT_FORMAT = "handssca-checkpoint"


def build_block(config: ModelConfig, channels: int = 256) -> nn.Module:
    """The block between backbone and regressor for ``config.block``."""
    size = config.feature_size
    if config.block == "none":
        return nn.Identity()
    if config.block == "self_attention":
        return SelfAttentionBlock(channels, size)
    return SSCA(channels, size, channel_branch=config.block == "ssca", scan_backend=config.scan_backend)


class HandSSCA(nn.Module):
    """Image crops -> MANO hand. See :meth:`forward` for the output contract."""

    def __init__(self, config: ModelConfig, hand_model: HandModel | None = None) -> None:
        super().__init__()
        self.config = config.validate()
        self.backbone = FPNBackbone(config.backbone)
        self.block = build_block(config)
        self.regressor = Regressor(config.feature_size, 256, config.hourglass_depth)
        self.regressor.init_weights()
        if config.init == "mean_pose":
            self.regressor.mano_regHead.start_at_mean_pose()
        self.hand = hand_model if hand_model is not None else HandModel.load(config.hand_model)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) RGB float in [0, 1], H = W = input_size.

        Returns ``vertices`` (B,V,3) m and ``joints`` (B,21,3) m (FreiHAND order, MANO frame, no
        translation), ``joints_img`` (B,21,2) normalised crop coordinates, ``pose_aa`` (B,48)
        axis-angle relative to hands_mean (as the official head), ``betas`` (B,10), ``rotmats``
        (B,16,3,3), ``heatmaps`` (B,21,S,S).
        """
        size = self.config.input_size
        if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (size, size):
            raise ValueError(f"images: expected (B, 3, {size}, {size}); got {tuple(images.shape)}")
        out = self.regressor(self.block(self.backbone(images)))
        pose = out["pose_aa"]  # the regressor returns pose and betas in float32, also under autocast
        with torch.autocast(images.device.type, enabled=False):  # under mixed precision the hand stays float32
            hand = self.hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=out["betas"])
        out.update(vertices=hand["vertices"], joints=hand["joints"], joints16=hand["joints16"])
        return out


def build_model(config: ModelConfig | dict | None = None, hand_model: HandModel | None = None) -> HandSSCA:
    """A freshly initialised network from a :class:`ModelConfig` (or its dict)."""
    if config is None:
        config = ModelConfig()
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return HandSSCA(config, hand_model)


def count_parameters(model: HandSSCA) -> dict[str, int]:
    """Trainable parameters per module and in total."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    parts = {"backbone": count(model.backbone), "block": count(model.block), "regressor": count(model.regressor)}
    parts["total"] = sum(parts.values())
    return parts


def checkpoint_dict(model: HandSSCA, **extra) -> dict:
    """The checkpoint layout: {format, config: {model: ...}, model: state_dict, ...extra}."""
    cfg = asdict(model.config)
    return {"format": CHECKPOINT_FORMAT, "version": 1, "config": {"model": cfg}, "model": model.state_dict(), **extra}


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write a checkpoint atomically (temporary file + rename): a crash never leaves a half file, and a
    full disk raises ``OSError`` naming the file, keeping the previous one."""
    return save_torch_file(path, payload)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a handssca checkpoint safely (``weights_only=True``) and check its layout."""
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        hint = " (an official HandS3C checkpoint? use `handssca convert-official`)" if isinstance(ckpt, dict) and "network" in ckpt else ""
        raise ValueError(f"{path}: not a handssca checkpoint{hint}")
    config = ckpt.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"{path}: checkpoint without its 'config' (expected config.model, the settings that built the network)")
    if not isinstance(ckpt.get("model"), dict):
        raise ValueError(f"{path}: checkpoint without its 'model' weights")
    return ckpt


def load_weights(model: nn.Module, state: dict, path: str | os.PathLike, what: str = "weights") -> None:
    """``model.load_state_dict(state)`` (strict); keys or shapes that do not fit raise one line naming the file."""
    own = model.state_dict()
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{path}: {what}: {len(not_tensors)} entries are not tensors, e.g. {not_tensors[:3]}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]  # fmt: skip
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: {what} do not fit the network: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                         f"shape mismatches {shapes[:3]} ({len(missing)}, {len(unexpected)}, {len(shapes)} in all)")  # fmt: skip
    model.load_state_dict(state)


def load_model(path: str | os.PathLike, hand_model: str | os.PathLike | None = None, map_location: str | torch.device = "cpu") -> HandSSCA:
    """Rebuild the network stored in a checkpoint. ``hand_model``: a MANO file; None = the default hand."""
    ckpt = read_checkpoint(path)
    cfg = dict(ckpt["config"]["model"])
    cfg["hand_model"] = None if hand_model is None else str(hand_model)
    try:
        model = build_model(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its config.model does not build a network ({first_line(str(e))})") from None
    load_weights(model, ckpt["model"], path)
    return model.to(map_location).eval()
