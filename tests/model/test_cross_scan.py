"""The fused 4-direction cross-scan (numba) against the unfused reference: values and gradients."""

import pytest
import torch

from handssca.model import SSCA
from handssca.model.ssca import cross_scan_fused, cross_scan_unfused
from handssca.ops import backend_status

pytestmark = pytest.mark.skipif(backend_status()["numba"] is not None, reason="numba unavailable")


def _params(c, n=3, rank=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(4, rank + 2 * n, c, generator=g, dtype=dtype) * 0.5).requires_grad_(),
        (torch.randn(4, c, rank, generator=g, dtype=dtype) * 0.5).requires_grad_(),
        (torch.randn(4, c, generator=g, dtype=dtype) * 0.3 - 1).requires_grad_(),
        (torch.randn(4 * c, n, generator=g, dtype=dtype) * 0.5).requires_grad_(),
        torch.randn(4 * c, generator=g, dtype=dtype).requires_grad_(),
    ]


@pytest.mark.parametrize(
    "batch, c, h, w, strided",
    [(2, 5, 3, 7, False), (1, 17, 9, 8, False), (2, 3, 10, 13, True), (1, 4, 1, 70, False)],
)
def test_fused_matches_unfused_values_and_gradients_float64(batch, c, h, w, strided):
    # H != W, L not a multiple of the checkpoint interval (64) in most cases, channels not a
    # multiple of the 16 lanes; strided: the channel-plane branch's permuted (non-contiguous) map
    g = torch.Generator().manual_seed(h * w)
    if strided:
        x = torch.randn(batch, h, w, c, generator=g, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_()
    else:
        x = torch.randn(batch, c, h, w, generator=g, dtype=torch.float64).requires_grad_()
    params = _params(c, seed=c)
    leaves = [x, *params]
    weights = torch.randn(batch, c, h * w, generator=g, dtype=torch.float64)
    y_ref = cross_scan_unfused(x, *params, backend="reference")
    y = cross_scan_fused(x, *params)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g_ref = torch.autograd.grad((y_ref * weights).sum(), leaves)
    g_fused = torch.autograd.grad((y * weights).sum(), leaves)
    for name, a, b in zip(["x", "x_proj", "dt_proj", "dt_bias", "A_logs", "Ds"], g_fused, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"gradient of {name}")


def test_fused_gradcheck():
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    params = _params(3, n=2, seed=3)
    assert torch.autograd.gradcheck(lambda *a: cross_scan_fused(*a), (x, *params), eps=1e-6, atol=1e-6)


def test_block_float32_fused_matches_unfused_numba():
    torch.manual_seed(0)
    block = SSCA(32, 8)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    y = block(x)
    g = torch.autograd.grad(y.square().sum(), [x, *block.parameters()])
    for m in block.modules():
        if hasattr(m, "scan_backend"):
            m.scan_backend = "torch"  # the unfused path
    y_ref = block(x)
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, *block.parameters()])
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


@pytest.mark.parametrize("strided", [False, True])
def test_fused_inference_path_matches_unfused(strided):
    # without gradients the fused kernels read B and C in place (strided) and save no checkpoints
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 9, 11, 6, generator=g, dtype=torch.float64)
    x = x.permute(0, 3, 1, 2) if strided else x.permute(0, 3, 1, 2).contiguous()
    params = [p.detach() for p in _params(6, seed=4)]
    with torch.no_grad():
        y = cross_scan_fused(x, *params)
    torch.testing.assert_close(y, cross_scan_unfused(x, *params, backend="reference"), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("parts", [2, 4])
def test_backward_split_into_channel_parts_matches_one_part(parts):
    # many-core machines split each (batch, direction) into tasks over the channel blocks; 70
    # channels are 5 blocks of 16 lanes, so 4 parts of 2 blocks leave the last one empty
    from handssca.ops.selective_scan import cross_numba

    g = torch.Generator().manual_seed(7)
    c, h, w, n = 70, 3, 45, 3  # L = 135: three chunks, the last one partial
    u2 = torch.randn(1, 2, c, h * w, generator=g, dtype=torch.float64)
    delta = torch.randn(1, 4, c, h * w, generator=g, dtype=torch.float64) * 0.5 - 1
    A = -torch.rand(4 * c, n, generator=g, dtype=torch.float64)
    B, C = torch.randn(2, 1, 4, n, h * w, generator=g, dtype=torch.float64)
    D, bias = torch.randn(2, 4 * c, generator=g, dtype=torch.float64)
    args = (u2, delta, A, B, C, D, bias, True)
    y2, states = cross_numba.forward(*args, save=True)
    gy2 = torch.randn(y2.shape, generator=g, dtype=torch.float64)
    one = cross_numba.backward(*args, gy2, states, parts=1)
    split = cross_numba.backward(*args, gy2, states, parts=parts)
    for name, a, b in zip(["u2", "delta", "A", "B", "C", "D", "delta_bias"], split, one):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"gradient of {name}")
