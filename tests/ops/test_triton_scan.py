"""The Triton selective-scan kernels, run by Triton's interpreter on CPU tensors (TRITON_INTERPRET=1),
against the float64 reference: values and gradients. ``make test-triton`` installs triton and runs
these; without triton they skip."""

import pytest
import torch

from handssca.ops import selective_scan
from handssca.ops.selective_scan import backend_status, triton_scan

pytest.importorskip("triton")
pytestmark = pytest.mark.triton


@pytest.fixture
def interpret():
    if torch.cuda.is_available():
        pytest.skip("these run the interpreter on CPU tensors; the gpu test covers CUDA")
    why = triton_scan.interpreter_error()
    if why is not None:
        pytest.skip(f"Triton interpreter: {why} (make test-triton)")


def make(batch, dim, length, nstate, groups, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return dict(
        u=r(batch, dim, length),
        delta=r(batch, dim, length) * 0.5 - 1.0,
        A=-torch.rand(dim, nstate, generator=g, dtype=dtype) * 3 - 0.05,
        B=r(batch, groups, nstate, length),
        C=r(batch, groups, nstate, length),
        D=r(dim),
        delta_bias=r(dim) * 0.3,
    )


CASES = {
    # HandSSCA's two scans scaled down: spatial (4 groups, N = 16, L = 32 x 32 -> 150 steps) and
    # the channel plane (4 x W channels, a long L); L is not a multiple of the chunk in either
    "spatial": (1, 16, 150, 16, 4, 64),
    "channel": (1, 8, 333, 16, 4, 64),
    "small chunks": (2, 6, 37, 3, 2, 16),
    "one step": (1, 4, 1, 5, 1, 16),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_triton_matches_float64_reference(interpret, monkeypatch, case):
    batch, dim, length, nstate, groups, chunk = CASES[case]
    monkeypatch.setattr(triton_scan, "CHUNK", chunk)
    args = make(batch, dim, length, nstate, groups, seed=length)
    assert backend_status()["triton"] is None
    weights = torch.randn(batch, dim, length, dtype=torch.float64)
    ref_leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
    ref = selective_scan(**ref_leaves, delta_softplus=True, backend="reference")
    ref_grads = torch.autograd.grad((ref * weights).sum(), list(ref_leaves.values()))
    leaves = {k: v.float().requires_grad_() for k, v in args.items()}
    y = selective_scan(**leaves, delta_softplus=True, backend="triton", strict=True)
    assert y.dtype == torch.float32
    grads = torch.autograd.grad((y * weights.float()).sum(), list(leaves.values()))
    scale = float(ref.abs().max())
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5 * scale)
    for key, g, g_ref in zip(args, grads, ref_grads):
        torch.testing.assert_close(
            g.double(), g_ref, rtol=1e-4, atol=1e-4 * float(g_ref.abs().max()), msg=f"gradient of {key}"
        )


def test_triton_without_softplus_and_ungrouped_and_bf16(interpret, monkeypatch):
    monkeypatch.setattr(triton_scan, "CHUNK", 16)
    args = make(1, 4, 40, 4, 1, seed=9)
    args["B"], args["C"] = args["B"][:, 0], args["C"][:, 0]  # (b, n, l)
    args["delta"], args["delta_bias"] = args["delta"].abs() * 0.3, args["delta_bias"].abs()  # dt > 0 without softplus
    ref = selective_scan(**args, delta_softplus=False, backend="reference")
    y = selective_scan(**{k: v.float() for k, v in args.items()}, delta_softplus=False, backend="triton", strict=True)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    y16 = selective_scan(**{k: v.bfloat16() for k, v in args.items()}, backend="triton", strict=True)
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16.float()).all()


def test_triton_needs_cuda_or_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    from handssca.ops import BackendUnavailable

    args = make(1, 4, 10, 2, 2)
    with pytest.raises(BackendUnavailable, match="triton"):
        selective_scan(**args, backend="triton", strict=True)


@pytest.mark.gpu
def test_triton_on_cuda_matches_reference_and_is_auto_without_mamba():
    args = make(2, 64, 1000, 16, 4, seed=3)
    ref = selective_scan(**args, delta_softplus=True, backend="reference")
    cuda = {k: v.float().cuda().requires_grad_() for k, v in args.items()}
    y = selective_scan(**cuda, delta_softplus=True, backend="triton", strict=True)
    torch.testing.assert_close(y.double().cpu(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    y.sum().backward()
    assert all(torch.isfinite(v.grad).all() for v in cuda.values())
    if backend_status()["mamba"] is not None:
        from handssca.ops import auto_backend

        assert auto_backend(torch.device("cuda")) == "triton"
