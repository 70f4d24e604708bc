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


def _kernel_reference(u2, delta, A, B, C, D, bias, softplus):
    """The four directions as four independent scans by the float64 reference backend, summed back
    at each source's positions (the kernels' layout, see ``cross_numba``)."""
    from handssca.ops import selective_scan

    c = u2.shape[2]
    y2 = torch.zeros_like(u2)
    for k in range(4):
        src, rev = divmod(k, 2)
        flip = (lambda t: t.flip(-1)) if rev else (lambda t: t)
        part = slice(k * c, (k + 1) * c)
        y = selective_scan(
            flip(u2[:, src]),
            flip(delta[:, k]),
            A[part],
            flip(B[:, k : k + 1]),
            flip(C[:, k : k + 1]),
            D[part],
            delta_bias=bias[part],
            delta_softplus=softplus,
            backend="reference",
        )
        y2 = y2.index_add(1, torch.tensor([src]), flip(y).unsqueeze(1))
    return y2


@pytest.mark.parametrize(
    "batch, c, length, softplus, parts",
    [
        (2, 40, 128, True, 1),
        (2, 40, 128, True, 2),
        (1, 33, 130, False, 1),
        (3, 17, 65, False, 3),
        (1, 70, 135, True, 4),
    ],
)
def test_kernels_match_four_reference_scans_float64(batch, c, length, softplus, parts):
    # the kernels against four plain scans: several 16-lane channel blocks per task (parts=1) and
    # split over tasks as on many-core machines (parts>1, with batch>1; 17 channels in 3 parts and
    # 70 channels (5 blocks) in 4 parts leave the last part empty), L a multiple of the checkpoint
    # interval or not, with and without softplus
    from handssca.ops.selective_scan import cross_numba

    g = torch.Generator().manual_seed(c + length)
    f64 = dict(generator=g, dtype=torch.float64)
    n = 4
    leaves = [
        torch.randn(batch, 2, c, length, **f64),
        torch.rand(batch, 4, c, length, **f64) * 0.3 + (0.0 if not softplus else -1.0),
        -torch.rand(4 * c, n, **f64) * 2,
        torch.randn(batch, 4, n, length, **f64),
        torch.randn(batch, 4, n, length, **f64),
        torch.randn(4 * c, **f64),
        torch.rand(4 * c, **f64) * 0.1,
    ]
    leaves = [t.requires_grad_() for t in leaves]
    y_ref = _kernel_reference(*leaves, softplus)
    gy2 = torch.randn(y_ref.shape, **f64)
    g_ref = torch.autograd.grad((y_ref * gy2).sum(), leaves)
    args = [t.detach() for t in leaves]
    y2, states = cross_numba.forward(*args, softplus, save=True)
    torch.testing.assert_close(y2, y_ref.detach(), rtol=1e-10, atol=1e-10)
    grads = cross_numba.backward(*args, softplus, gy2, states, parts=parts)
    for name, a, b in zip(["u2", "delta", "A", "B", "C", "D", "delta_bias"], grads, g_ref):
        assert a.shape == b.shape and a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=f"gradient of {name}")
