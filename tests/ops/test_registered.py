"""The registered operators (handssca::scan_fwd / scan_bwd): schema, fake kernels and autograd."""

import pytest
import torch

from handssca.ops import backend_status
from handssca.ops.selective_scan.reference import selective_scan_reference
from handssca.ops.selective_scan.registered import scan_fwd, scan_op

pytestmark = pytest.mark.skipif(backend_status()["numba"] is not None, reason="numba unavailable")


def _args(dtype=torch.float64, length=70, requires_grad=True):
    g = torch.Generator().manual_seed(1)
    b, d, n, groups = 2, 4, 3, 2
    u = torch.randn(b, d, length, generator=g, dtype=dtype)
    delta = torch.randn(b, d, length, generator=g, dtype=dtype) * 0.5
    A = -torch.rand(d, n, generator=g, dtype=dtype) - 0.1
    B = torch.randn(b, groups, n, length, generator=g, dtype=dtype)
    C = torch.randn(b, groups, n, length, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    bias = torch.randn(d, generator=g, dtype=dtype) * 0.3
    return [t.requires_grad_(requires_grad) for t in (u, delta, A, B, C, D, bias)]


def test_opcheck_schema_fake_and_autograd():
    args = _args()
    torch.library.opcheck(scan_fwd, (*args, True, True, "numba"))
    torch.library.opcheck(scan_fwd, (*[a.detach() for a in args], True, False, "numba"))


def test_op_matches_reference_with_gradients():
    args = _args()
    y = scan_op(*args, True, "numba")
    ref = selective_scan_reference(*args, delta_softplus=True)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    w = torch.randn_like(y)
    g = torch.autograd.grad((y * w).sum(), args)
    g_ref = torch.autograd.grad((ref * w).sum(), args)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_compiled_function_matches_eager_values_and_gradients():
    args = _args()

    def fn(u, delta, A, B, C, D, bias):
        return scan_op(u * 1.5, delta, A, B, C, D, bias, True, "numba").sin()

    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    y, y_c = fn(*args), compiled(*args)
    torch.testing.assert_close(y_c, y)
    for a, b in zip(torch.autograd.grad(y.sum(), args), torch.autograd.grad(y_c.sum(), args)):
        torch.testing.assert_close(a, b)
