"""The inference copy (BatchNorm folded, channels-last, bf16 backbone) against the network it was copied from."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from handssca.model import build_model
from handssca.model.inference_copy import fold_batch_norms, inference_copy, resolve_precision


def _trained_like(backbone: str, block: str = "ssca", size: int = 128):
    """A network whose BatchNorms carry non-trivial statistics and affine terms, as after training."""
    torch.manual_seed(0)
    model = build_model({"input_size": size, "backbone": backbone, "block": block}).eval()
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_float32_copy_equals_the_network(backbone):
    model = _trained_like(backbone)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x)
        net = inference_copy(model, torch.float32)
        out = net(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.network.backbone.modules())  # folded
    assert net.network.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for key in ("joints_img", "pose_aa", "betas", "joints", "vertices", "heatmaps"):
        scale = ref[key].abs().max().item()
        assert out[key].dtype == torch.float32
        assert torch.allclose(out[key], ref[key], rtol=0, atol=1e-4 * max(scale, 1.0)), key
    # the network itself is left as it was: its BatchNorms and weights
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules()) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bfloat16_copy_is_close_and_float32_out():
    model = _trained_like("resnet18")
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        net = inference_copy(model, torch.bfloat16)
        out = net(x)
    assert next(net.network.backbone.parameters()).dtype == torch.bfloat16
    assert next(net.network.regressor.parameters()).dtype == torch.float32
    for key in ("joints_img", "joints", "vertices"):
        assert out[key].dtype == torch.float32 and torch.isfinite(out[key]).all()
    # bf16 keeps 8 bits of mantissa: the 2D joints within 2% of the crop, the 3D joints within 5 mm
    assert (out["joints_img"] - ref["joints_img"]).abs().max() < 0.02
    assert (out["joints"] - ref["joints"]).abs().max() < 5e-3
    assert net.config == model.config and net.hand.identity() == model.hand.identity()


def test_fold_names_every_batch_norm_of_the_backbone():
    model = _trained_like("resnet50")
    backbone = model.backbone
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert fold_batch_norms(backbone) == bns == 1 + 16 * 3 + 4  # stem, 16 bottlenecks, 4 downsamples
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())


def test_resolve_precision():
    assert resolve_precision("float32", "cpu", True) == torch.float32
    assert resolve_precision("bfloat16", "cpu", False) == torch.bfloat16
    assert resolve_precision("auto", "cpu", True) == torch.bfloat16
    assert resolve_precision("auto", "cpu", False) == torch.float32
    assert resolve_precision("auto", "cpu", None) == torch.float32
    assert resolve_precision("auto", "cuda", True) == torch.float32
    with pytest.raises(ValueError, match="precision: expected one of auto, float32, bfloat16; got 'fp16'"):
        resolve_precision("fp16", "cpu", True)
    with pytest.raises(ValueError, match="dtype"):
        inference_copy(_trained_like("resnet18", block="none"), torch.float16)
