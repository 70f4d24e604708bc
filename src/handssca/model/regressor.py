"""HandOccNet's regressor as used by HandS3C: heatmap head, residual encoder, MANO parameter head.

Names of submodules follow the official code (``hg``, ``res``, ``fc``, ``score``, ``heatmap_conv``,
``reg``, ``mano_base_layer``, ``pose_reg`` ...) so that official checkpoints convert by renaming the
three heads only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from handssca.hand.rotations import matrix_to_axis_angle, rot6d_to_matrix


def _act() -> nn.Module:
    return nn.LeakyReLU(0.01, inplace=True)


class PreActBottleneck(nn.Module):
    """BN-LReLU-1x1(in->planes)-BN-LReLU-3x3-BN-LReLU-1x1(planes->2 planes) + identity."""

    def __init__(self, inplanes: int = 256, planes: int = 128) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, 1)
        self.relu = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + x


class Residual(nn.Module):
    """The encoder's residual module: BN-LReLU-1x1-BN-LReLU-3x3-BN-LReLU-1x1 + identity.

    Alike :class:`PreActBottleneck` but for its parameter names (``bn``, ``bn1``, ``bn2`` there
    ``bn1``..``bn3``) and widths, as in the official code, whose checkpoints load by name: two
    classes on purpose."""

    def __init__(self, channels: int = 256, mid: int = 128) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1)
        self.relu = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn(x)))
        out = self.conv2(self.relu(self.bn1(out)))
        out = self.conv3(self.relu(self.bn2(out)))
        return out + x


class Hourglass(nn.Module):
    """Recursive hourglass; ``hg[i]`` holds the residuals of level i (innermost level 0 has 4)."""

    def __init__(self, depth: int = 2, planes: int = 128) -> None:
        super().__init__()
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(nn.Sequential(PreActBottleneck(2 * planes, planes)) for _ in range(4 if i == 0 else 3))
            for i in range(depth)
        )

    def _forward(self, n: int, x: torch.Tensor) -> torch.Tensor:
        up1 = self.hg[n - 1][0](x)
        low1 = self.hg[n - 1][1](F.max_pool2d(x, 2, 2))
        low2 = self._forward(n - 1, low1) if n > 1 else self.hg[n - 1][3](low1)
        low3 = self.hg[n - 1][2](low2)
        return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, x)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class HeatmapHead(nn.Module):
    """Hourglass -> residual -> 1x1 conv -> 21 score maps -> spatial softmax -> soft-argmax.

    Input (B, 256, S, S); returns heatmaps (B, 21, S, S) summing to 1, the encoding (B, 256, S, S)
    and joints_img (B, 21, 2) in normalised [0, 1] crop coordinates (x = column, y = row).
    """

    def __init__(self, size: int = 32, joints: int = 21, channels: int = 256, depth: int = 2) -> None:
        super().__init__()
        if size % (2**depth):
            raise ValueError(f"heatmap size {size} must be divisible by 2^{depth} for a depth-{depth} hourglass")
        self.size = size
        self.hg = nn.ModuleList([Hourglass(depth, channels // 2)])
        self.res = nn.ModuleList([nn.Sequential(PreActBottleneck(channels, channels // 2))])
        self.fc = nn.ModuleList([_ConvBlock(channels, channels)])
        self.score = nn.ModuleList([nn.Conv2d(channels, joints, 1)])
        self.betas = nn.Parameter(torch.ones(joints, 1))
        grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        self.register_buffer("uu", grid[None, :].expand(size, size).clone(), persistent=False)
        self.register_buffer("vv", grid[:, None].expand(size, size).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.fc[0](self.res[0](self.hg[0](x)))
        scores = self.score[0](y).float()  # softmax and soft-argmax in float32 under mixed precision
        b, j, h, w = scores.shape
        heatmaps = F.softmax(scores.reshape(b, j, h * w) * self.betas, dim=2).reshape(b, j, h, w)
        joints_x = (heatmaps * self.uu).sum((2, 3))
        joints_y = (heatmaps * self.vv).sum((2, 3))
        return heatmaps, y, torch.stack([joints_x, joints_y], dim=-1)


class HandEncoder(nn.Module):
    """heatmaps + encoding -> 4 x (2 Residuals + max-pool) -> (B, 1024).

    At 32x32 the map pools to 2x2 (256 x 4 = 1024). At 28x28 it pools to 1x1 and is upsampled x2 by
    nearest neighbour (four copies) to keep 1024, exactly as the authors' FreiHAND configuration.
    """

    def __init__(self, joints: int = 21, channels: int = 256, size: int = 32) -> None:
        super().__init__()
        self.heatmap_conv = nn.Conv2d(joints, channels, 1)
        self.encoding_conv = nn.Conv2d(channels, channels, 1)
        self.reg = nn.ModuleList(Residual(channels, channels // 2) for _ in range(8))
        final = size
        for _ in range(4):
            final //= 2
        if final not in (1, 2):
            raise ValueError(f"encoder input size {size}: expected 16-31 (pools to 1) or 32-47 (pools to 2)")
        self.upsample = final == 1
        self.out_features = channels * 4

    def forward(self, heatmaps: torch.Tensor, encoding: torch.Tensor) -> torch.Tensor:
        x = self.heatmap_conv(heatmaps) + self.encoding_conv(encoding)
        for i in range(4):
            x = F.max_pool2d(self.reg[2 * i + 1](self.reg[2 * i](x)), 2, 2)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x.flatten(1)


class ManoHead(nn.Module):
    """(B, 1024) -> 16 rotations (6D -> matrices -> axis-angle) and 10 betas."""

    def __init__(self, in_features: int = 1024, joints: int = 16, betas: int = 10) -> None:
        super().__init__()
        self.joints = joints
        self.mano_base_layer = nn.Sequential(nn.Linear(in_features, 1024), _act(), nn.Linear(1024, 512), _act())
        self.pose_reg = nn.Linear(512, joints * 6)
        self.shape_reg = nn.Linear(512, betas)

    def start_at_mean_pose(self) -> None:
        """Bias the 6D output to identity rotations (pose = hands_mean) and betas to 0.

        Not in the official code (which starts from random rotations); with the official N(0, 0.01)
        weights the network then starts near the mean hand instead of a random one.
        """
        with torch.no_grad():
            self.pose_reg.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(self.joints))
            self.shape_reg.bias.zero_()

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.mano_base_layer(features)
        rotmats = rot6d_to_matrix(self.pose_reg(f).float().reshape(-1, self.joints, 6))  # float32 under autocast
        pose_aa = matrix_to_axis_angle(rotmats).reshape(-1, self.joints * 3)
        return {"rotmats": rotmats, "pose_aa": pose_aa, "betas": self.shape_reg(f).float()}


class Regressor(nn.Module):
    """Feature map (B, 256, S, S) -> heatmaps, 2D joints and MANO parameters."""

    def __init__(self, size: int = 32, channels: int = 256, hourglass_depth: int = 2) -> None:
        super().__init__()
        self.hand_regHead = HeatmapHead(size, 21, channels, hourglass_depth)
        self.hand_Encoder = HandEncoder(21, channels, size)
        self.mano_regHead = ManoHead(self.hand_Encoder.out_features)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        heatmaps, encoding, joints_img = self.hand_regHead(feats)
        out = self.mano_regHead(self.hand_Encoder(heatmaps, encoding))
        out.update(heatmaps=heatmaps, joints_img=joints_img)
        return out

    def init_weights(self) -> None:
        """The official regressor initialisation: conv N(0, 0.001), BN (1, 0), linear N(0, 0.01)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
