"""The HandSSCA network: backbone -> block (none / self-attention / SSA / SSCA) -> regressor -> hand layer."""

from __future__ import annotations

import torch
from torch import nn

from handssca.config import ModelConfig
from handssca.hand import HandModel
from handssca.model.attention import SelfAttentionBlock
from handssca.model.backbone import FPNBackbone
from handssca.model.regressor import Regressor
from handssca.model.ssca import SSCA

#: The outputs of the network that leave it (inference, export, evaluation), in this order: vertices
#: (B,V,3) m, joints (B,21,3) m, joints_img (B,21,2) normalised crop coordinates, pose_aa (B,48),
#: betas (B,10). See :meth:`HandSSCA.forward` for the rest of its dict.
OUTPUT_KEYS = ("vertices", "joints", "joints_img", "pose_aa", "betas")


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
