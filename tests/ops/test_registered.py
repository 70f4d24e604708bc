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


def test_eager_runs_never_import_the_compiler_stack():
    """Outside torch.compile / torch.export the scans run the same kernels through a plain autograd.Function:
    the registered operator's first eager call imported torch._dynamo (~1.4 s at every command's start) and,
    where installed, triton (which crashed next to Mesa's EGL). On the CPU, backend choice asks for neither."""
    import subprocess
    import sys

    code = """
import sys, torch
from handssca.model import build_model
m = build_model({"backbone": "resnet18", "input_size": 128, "block": "ssca"}).eval()
with torch.no_grad():
    m(torch.rand(1, 3, 128, 128))
x = torch.rand(1, 3, 128, 128, requires_grad=True)
m(x)["vertices"].sum().backward()
assert x.grad is not None and torch.isfinite(x.grad).all()
from handssca.ops.selective_scan.interface import resolve_backend
for name in ("numba", "torch", "export", "auto"):  # naming a CPU backend asks for nothing else
    resolve_backend(name, torch.device("cpu"))
print(sorted(k for k in ("torch._dynamo", "triton", "mamba_ssm") if k in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_eager_gradients_are_first_order_only():
    """The kernels' gradients are not themselves differentiable: asking for a second order raises instead of
    silently returning a first-order gradient without a graph."""
    from handssca.ops.selective_scan.interface import selective_scan

    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, 4, 9, generator=g, requires_grad=True)
    delta = torch.rand(1, 4, 9, generator=g)
    A = -torch.rand(4, 3, generator=g) - 0.1
    B, C = torch.randn(1, 1, 3, 9, generator=g), torch.randn(1, 1, 3, 9, generator=g)
    y = selective_scan(u, delta, A, B, C, backend="numba", strict=True)
    (gu,) = torch.autograd.grad(y.square().sum(), u, create_graph=True)
    assert gu.requires_grad  # part of a graph, whose backward then says why it cannot go on
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gu.sum().backward()
