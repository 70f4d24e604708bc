import logging

import pytest
import torch

from handssca.ops import BackendUnavailable, backend_status, selective_scan
from handssca.ops.selective_scan import resolve_backend
from handssca.ops.selective_scan.reference import selective_scan_reference

FAST_BACKENDS = [b for b in ("torch", "numba", "export") if backend_status()[b] is None]


def make(batch, dim, length, nstate, groups, dtype=torch.float64, seed=0, grouped=True):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    bc_shape = (batch, groups, nstate, length) if grouped else (batch, nstate, length)
    return dict(
        u=r(batch, dim, length),
        delta=r(batch, dim, length) * 0.5,
        A=-torch.rand(dim, nstate, generator=g, dtype=dtype) * 3 - 0.05,
        B=r(*bc_shape),
        C=r(*bc_shape),
        D=r(dim),
        delta_bias=r(dim) * 0.3,
    )


def test_reference_closed_form_cumulative_sum():
    # A = 0, B = C = 1, N = 1: the state is the running sum of dt * u
    u = torch.randn(2, 3, 9, dtype=torch.float64)
    delta = torch.rand(2, 3, 9, dtype=torch.float64)
    ones = torch.ones(2, 1, 9, dtype=torch.float64)
    D = torch.randn(3, dtype=torch.float64)
    y = selective_scan_reference(u, delta, torch.zeros(3, 1, dtype=torch.float64), ones, ones, D)
    torch.testing.assert_close(y, torch.cumsum(delta * u, -1) + D[:, None] * u)


def test_reference_closed_form_geometric_decay():
    # constant dt and A: x_t = sum_s exp(dt A (t - s)) dt u_s
    length, dt, a = 12, 0.3, -0.7
    u = torch.randn(1, 1, length, dtype=torch.float64)
    delta = torch.full_like(u, dt)
    ones = torch.ones(1, 1, length, dtype=torch.float64)
    y = selective_scan_reference(u, delta, torch.tensor([[a]], dtype=torch.float64), ones, ones)
    t = torch.arange(length, dtype=torch.float64)
    kernel = torch.tril(torch.exp(dt * a * (t[:, None] - t[None, :])))
    torch.testing.assert_close(y[0, 0], kernel @ (dt * u[0, 0]))


def test_reference_softplus_and_bias():
    args = make(1, 4, 5, 3, 2)
    y1 = selective_scan_reference(**args, delta_softplus=True)
    d = torch.nn.functional.softplus(args["delta"] + args["delta_bias"][None, :, None])
    y2 = selective_scan_reference(**{**args, "delta": d, "delta_bias": None})
    torch.testing.assert_close(y1, y2)


CASES = [
    # batch, dim, length, nstate, groups, grouped, use_D, use_bias, softplus
    (2, 8, 37, 4, 2, True, True, True, True),
    (1, 6, 1, 3, 3, True, False, False, False),
    (2, 4, 65, 5, 1, False, True, False, True),
    (1, 8, 130, 16, 4, True, False, True, False),
    (3, 2, 7, 2, 2, True, True, True, True),
    (2, 40, 70, 3, 2, True, True, True, True),  # 20 channels per group: two 16-lane blocks in numba
]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_backend_matches_reference_float64(backend, case):
    batch, dim, length, nstate, groups, grouped, use_d, use_bias, softplus = case
    args = make(batch, dim, length, nstate, groups, grouped=grouped, seed=length)
    if not use_d:
        args["D"] = None
    if not use_bias:
        args["delta_bias"] = None
    leaves = {k: v.requires_grad_() for k, v in args.items() if v is not None}
    weights = torch.randn(batch, dim, length, dtype=torch.float64)
    outs = {}
    for name in ("reference", backend):
        y = selective_scan(**args, delta_softplus=softplus, backend=name, strict=True)
        grads = torch.autograd.grad((y * weights).sum(), list(leaves.values()))
        outs[name] = (y, grads)
    # the export form multiplies exp(S_t - S_r) by sums of exp(S_r - S_s) terms: for the growing
    # scans of the cases without softplus (dt < 0) that costs a few digits even in float64
    tol = 1e-7 if backend == "export" else 1e-9
    torch.testing.assert_close(outs[backend][0], outs["reference"][0], rtol=tol / 10, atol=tol / 10)
    for key, g_b, g_r in zip(leaves, outs[backend][1], outs["reference"][1]):
        torch.testing.assert_close(g_b, g_r, rtol=tol, atol=tol, msg=f"gradient of {key}")


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_inference_path_matches_reference_float64(backend, case):
    # without gradients the numba backend skips checkpoints and reads B, C in place (strided)
    batch, dim, length, nstate, groups, grouped, use_d, use_bias, softplus = case
    args = make(batch, dim, length, nstate, groups, grouped=grouped, seed=length + 1)
    args["D"] = args["D"] if use_d else None
    args["delta_bias"] = args["delta_bias"] if use_bias else None
    with torch.no_grad():
        y = selective_scan(**args, delta_softplus=softplus, backend=backend, strict=True)
    ref = selective_scan(**args, delta_softplus=softplus, backend="reference")
    tol = 1e-8 if backend == "export" else 1e-10  # the export form's few lost digits, as above
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_gradcheck(backend):
    args = make(1, 4, 9, 3, 2, seed=3)
    keys = list(args)

    def fn(*xs):
        return selective_scan(**dict(zip(keys, xs)), delta_softplus=True, backend=backend, strict=True)

    assert torch.autograd.gradcheck(fn, tuple(v.requires_grad_() for v in args.values()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_float32_matches_float64_reference(backend):
    args = make(2, 16, 300, 16, 4, seed=5)
    ref = selective_scan(**args, delta_softplus=True, backend="reference")
    y = selective_scan(**{k: v.float() for k, v in args.items()}, delta_softplus=True, backend=backend)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_float32_softplus_over_a_wide_range_matches_float64_reference(backend):
    # delta from -40 to 40 over 640 channels and 2 steps, so that each output and gradient depends
    # on one or two softplus/sigmoid values (the numba kernels compute them with their own
    # vectorised exp and log1p in float32): checks them to float32 accuracy, not diluted by a sum
    args = make(1, 640, 2, 2, 2, seed=7)
    args["delta"] = torch.linspace(-40, 40, 640 * 2, dtype=torch.float64).reshape(1, 640, 2)
    args["A"] = args["A"] * 0.05
    weights = torch.randn(1, 640, 2, dtype=torch.float64)
    res = {}
    for name, dtype in (("reference", torch.float64), (backend, torch.float32)):
        leaves = {k: v.detach().to(dtype).requires_grad_() for k, v in args.items()}
        y = selective_scan(**leaves, delta_softplus=True, backend=name, strict=True)
        res[name] = (y.detach().double(), torch.autograd.grad((y * weights.to(dtype)).sum(), list(leaves.values())))
    ref_y, ref_g = res["reference"]
    torch.testing.assert_close(res[backend][0], ref_y, rtol=2e-5, atol=1e-5 * float(ref_y.abs().max()))
    for key, g_b, g_r in zip(args, res[backend][1], ref_g):
        torch.testing.assert_close(
            g_b.double(), g_r, rtol=2e-5, atol=1e-5 * float(g_r.abs().max()), msg=f"gradient of {key}"
        )


def test_output_dtype_follows_u_and_computes_in_float32():
    args = {k: v.to(torch.bfloat16) for k, v in make(1, 4, 10, 2, 2).items()}
    y = selective_scan(**args, backend="torch")
    assert y.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(u=torch.zeros(2, 4)), "u: expected shape"),
        (dict(delta=torch.zeros(1, 4, 9, dtype=torch.float64)), "delta: expected shape"),
        (dict(A=torch.zeros(3, 2, dtype=torch.float64)), "A: expected shape"),
        (dict(B=torch.zeros(1, 3, 2, 10, dtype=torch.float64)), "B: expected shape"),
        (dict(C=torch.zeros(1, 2, 2, 9, dtype=torch.float64)), "C: expected shape"),
        (dict(D=torch.zeros(5, dtype=torch.float64)), "D: expected shape"),
        (dict(delta_bias=torch.zeros(4, 1, dtype=torch.float64)), "delta_bias: expected shape"),
        (dict(u=torch.zeros(1, 4, 10, dtype=torch.int64)), "u: expected a floating-point"),
    ],
)
def test_invalid_inputs_name_the_argument(change, message):
    args = make(1, 4, 10, 2, 2)
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        selective_scan(**args)


def test_strict_raises_and_fallback_logs(caplog):
    args = make(1, 4, 5, 2, 2)
    if backend_status()["mamba"] is not None:
        with pytest.raises(BackendUnavailable, match="mamba"):
            selective_scan(**args, backend="mamba", strict=True)
        with caplog.at_level(logging.WARNING, logger="handssca.ops"):
            y = selective_scan(**args, backend="mamba")
        torch.testing.assert_close(y, selective_scan(**args, backend="reference"))
    with pytest.raises(ValueError, match="backend: expected one of"):
        selective_scan(**args, backend="nope")


def test_environment_variable_selects_backend(monkeypatch):
    monkeypatch.setenv("HANDSSCA_SCAN_BACKEND", "reference")
    assert resolve_backend("auto", torch.device("cpu")) == "reference"
    monkeypatch.setenv("HANDSSCA_SCAN_BACKEND", "torch")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    monkeypatch.delenv("HANDSSCA_SCAN_BACKEND")
    expected = "numba" if backend_status()["numba"] is None else "torch"
    assert resolve_backend("auto", torch.device("cpu")) == expected


@pytest.mark.gpu
def test_cuda_backends_match_reference():
    args = make(2, 16, 200, 16, 4, dtype=torch.float32, seed=7)
    ref = selective_scan(**{k: v.double() for k, v in args.items()}, delta_softplus=True, backend="reference")
    cuda_args = {k: v.cuda().requires_grad_() for k, v in args.items()}
    for backend in ("torch", "mamba", "auto"):
        y = selective_scan(**cuda_args, delta_softplus=True, backend=backend)
        torch.testing.assert_close(y.double().cpu(), ref, rtol=1e-4, atol=1e-4)
        y.sum().backward()
        assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in cuda_args.values())


@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_export_form_stays_finite_and_exact_for_strong_decays(scale):
    # the chunked cumsum form floors each step's log decay at -21 so that its exponentials stay
    # within float32; with dt * A down to -300 per step it must still match the loop (float32)
    args = make(1, 8, 45, 4, 2, seed=11)
    args["A"] = args["A"] * scale
    ref = selective_scan(**args, delta_softplus=True, backend="reference")
    y = selective_scan(**{k: v.float() for k, v in args.items()}, delta_softplus=True, backend="export", strict=True)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("scale", [30.0, 300.0])
def test_export_form_stays_finite_for_large_inputs_and_strong_decays(scale):
    # large u and B (|dt u B| in the hundreds) with strong decays: the float32 exponentials inside a chunk
    # must not overflow (with the floor at -21 per step they reached exp(84) and y became inf/NaN)
    args = make(1, 8, 45, 4, 2, seed=12)
    args["A"], args["u"], args["B"] = args["A"] * scale, args["u"] * 30, args["B"] * 10
    ref = selective_scan(**args, delta_softplus=True, backend="reference")
    y = selective_scan(**{k: v.float() for k, v in args.items()}, delta_softplus=True, backend="export", strict=True)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
