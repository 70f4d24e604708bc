"""A copy of a trained network made for inference: BatchNorm folded into the backbone's convolutions,
channels-last memory, and the backbone's weights in bf16 with bf16 autocast where the CPU computes in bf16.

Measured on a 2-core AVX512-BF16 CPU (``benchmarks/model.py --precision``, ResNet-50 at 256, batch 1):
``ssca`` 175 -> ~110 ms, ``none`` 131 -> ~75 ms. The scan and the hand layer stay float32 (as under
``train.amp``); the regressor's pre-activation blocks keep their BatchNorm (it comes before the conv).
Training is unaffected: the copy is separate and in eval mode.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from handssca.model.backbone import BasicBlock, Bottleneck, FPNBackbone
from handssca.model.handssca import HandSSCA

#: What ``precision`` may be: ``auto`` is bfloat16 on a CPU with native bf16 arithmetic, float32 elsewhere
#: (no GPU has been timed with this copy).
PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str, device: torch.device | str, native_bf16: bool | None) -> torch.dtype:
    """``precision`` (one of :data:`PRECISIONS`) -> the dtype the backbone runs in on ``device``;
    ``native_bf16``: whether the CPU computes in bf16 (``handssca.environment.cpu_has_bf16()``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    return torch.bfloat16 if torch.device(device).type == "cpu" and native_bf16 else torch.float32


def _fold(owner: nn.Module, conv: str, bn: str) -> None:
    """Replace ``owner.<conv>`` by the conv with ``owner.<bn>`` folded in, and the BatchNorm by Identity."""
    folded = fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn))
    setattr(owner, conv, folded)
    setattr(owner, bn, nn.Identity())


def fold_batch_norms(backbone: FPNBackbone) -> int:
    """Fold every BatchNorm of the ResNet backbone into the convolution before it (eval mode, in place).
    Returns how many were folded. The pairs are named from the blocks' forward (conv_i -> bn_i, and the
    downsample's Sequential(conv, bn)), not guessed from registration order."""
    backbone.eval()
    n = 0
    _fold(backbone, "conv1", "bn1")
    n += 1
    for module in backbone.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            pairs = 3 if isinstance(module, Bottleneck) else 2
            for i in range(1, pairs + 1):
                _fold(module, f"conv{i}", f"bn{i}")
            n += pairs
            down = module.downsample
            if isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[1], nn.BatchNorm2d):
                down[0] = fuse_conv_bn_eval(down[0], down[1])
                down[1] = nn.Identity()
                n += 1
    left = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    if left:
        raise RuntimeError(f"fold_batch_norms: {left} BatchNorm layers of the backbone were not folded")
    return n


class InferenceNetwork(nn.Module):
    """A :class:`HandSSCA` for inference only: same inputs and outputs (see :meth:`HandSSCA.forward`), the
    backbone folded, channels-last and in ``dtype``; outputs float32 (``vertices``, ``joints`` ...)."""

    def __init__(self, network: HandSSCA, dtype: torch.dtype) -> None:
        super().__init__()
        self.network, self.dtype = network, dtype

    @property
    def config(self):
        return self.network.config

    @property
    def hand(self):
        return self.network.hand

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B, 3, S, S) RGB in [0, 1] -> the network's dict (float32 for every output key)."""
        images = images.contiguous(memory_format=torch.channels_last)
        bf16 = self.dtype == torch.bfloat16
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = self.network(images)
        return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


def inference_copy(model: HandSSCA, dtype: torch.dtype = torch.float32) -> InferenceNetwork:
    """An eval-mode copy of ``model`` for inference (``model`` itself is left as it is); ``dtype``: float32
    (the same outputs as ``model`` to float rounding, ~1e-5) or bfloat16 (see :func:`resolve_precision`)."""
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"dtype: expected torch.float32 or torch.bfloat16; got {dtype}")
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    fold_batch_norms(net.backbone)
    net = net.to(memory_format=torch.channels_last)
    if dtype == torch.bfloat16:
        net.backbone.to(torch.bfloat16)
    return InferenceNetwork(net, dtype)
