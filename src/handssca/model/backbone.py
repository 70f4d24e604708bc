"""ResNet + FPN backbone (HandOccNet/HandS3C style): image (B,3,H,W) -> features (B,256,H/8,W/8).

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1`` ...) so that an
ImageNet state-dict file loads directly; every ReLU is a LeakyReLU (slope 0.01) as in the official code.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn


def _act() -> nn.Module:
    return nn.LeakyReLU(0.01, inplace=True)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = _act()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = _act()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


RESNETS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class FPNBackbone(nn.Module):
    """ResNet trunk + FPN top-down path to P2, 3x3 smoothing, 2x2 average pool -> (B, 256, H/8, W/8)."""

    def __init__(self, depth: str = "resnet50", out_channels: int = 256) -> None:
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"backbone: expected one of {sorted(RESNETS)}; got {depth!r}")
        block, layers = RESNETS[depth]
        self.depth = depth
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = _act()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        e = block.expansion
        self.toplayer = nn.Conv2d(512 * e, out_channels, 1)
        self.latlayer1 = nn.Conv2d(256 * e, out_channels, 1)
        self.latlayer2 = nn.Conv2d(128 * e, out_channels, 1)
        self.latlayer3 = nn.Conv2d(64 * e, out_channels, 1)
        self.smooth3 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.pool = nn.AvgPool2d(2, 2)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith(("toplayer", "latlayer", "smooth")):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @staticmethod
    def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=False) + y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [0, 1] -> (B, 256, H/8, W/8)."""
        c1 = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(c1)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        p5 = self.toplayer(c5)
        p4 = self._upsample_add(p5, self.latlayer1(c4))
        p3 = self._upsample_add(p4, self.latlayer2(c3))
        p2 = self.smooth3(self._upsample_add(p3, self.latlayer3(c2)))
        return self.pool(p2)

    def load_imagenet_weights(self, path: str | os.PathLike) -> list[str]:
        """Load a torchvision ResNet state dict file (``fc.*`` ignored); returns the FPN keys left at init.

        Raises with the offending keys when the file is not a matching ResNet.
        """
        from handssca.model.files import load_torch_file

        state = load_torch_file(path, "ResNet state dict file (train.backbone_weights)")
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict; found {type(state).__name__}")
        state = {
            k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")
        }
        own = self.state_dict()
        unexpected = [k for k in state if k not in own]
        bad_shape = [k for k in state if k in own and own[k].shape != state[k].shape]
        if unexpected or bad_shape:
            raise ValueError(
                f"{path}: not a torchvision {self.depth} state dict: unexpected keys {unexpected[:5]}, "
                f"shape mismatches {bad_shape[:5]}"
            )
        missing = [k for k in own if k not in state]
        trunk_missing = [k for k in missing if not k.startswith(("toplayer", "latlayer", "smooth"))]
        if trunk_missing:
            raise ValueError(f"{path}: missing ResNet keys {trunk_missing[:5]} ({len(trunk_missing)} in all)")
        self.load_state_dict(state, strict=False)
        return missing
