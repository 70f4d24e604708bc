"""``selective_scan``: one interface over the reference, torch, numba-CPU and mamba-CUDA backends."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F

from handssca.ops.selective_scan import cpu_numba, triton_scan
from handssca.ops.selective_scan.reference import selective_scan_reference
from handssca.ops.selective_scan.registered import scan_op
from handssca.ops.selective_scan.torch_scan import scan_core_chunked, scan_core_torch

log = logging.getLogger("handssca.ops")

BACKENDS = ("reference", "torch", "numba", "mamba", "export", "triton")
ENV_VAR = "HANDSSCA_SCAN_BACKEND"


class BackendUnavailable(RuntimeError):
    """A selective-scan backend was asked for by name but cannot run here."""


@functools.cache
def _mamba_fn() -> Callable | None:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore

        return selective_scan_fn
    except Exception:
        return None


def backend_status() -> dict[str, str | None]:
    """{backend: None if usable here, else why not}. ``mamba`` also needs a CUDA device at call time."""
    status: dict[str, str | None] = {"reference": None, "torch": None, "export": None}
    status["numba"] = None if cpu_numba.available() else f"numba does not import ({cpu_numba.NUMBA_IMPORT_ERROR})"
    triton_why = triton_scan.import_error()
    if triton_why is None and not torch.cuda.is_available():
        why_not = triton_scan.interpreter_error()
        if why_not is not None:
            triton_why = f"no CUDA device, and the interpreter is off: {why_not}"
    status["triton"] = triton_why
    if _mamba_fn() is None:
        status["mamba"] = "mamba_ssm is not installed (pip install mamba-ssm, CUDA only)"
    elif not torch.cuda.is_available():
        status["mamba"] = "no CUDA device"
    else:
        status["mamba"] = None
    return status


def auto_backend(device: torch.device) -> str:
    """The fastest usable backend for tensors on ``device``."""
    if device.type == "cpu":  # without asking for triton or mamba_ssm: importing them costs, and can crash
        return "numba" if cpu_numba.available() else "torch"
    status = backend_status()
    if device.type == "cuda":
        if status["mamba"] is None:
            return "mamba"
        return "triton" if status["triton"] is None else "torch"
    return "torch"


def _status_of(backend: str) -> str | None:
    """:func:`backend_status` of one backend, asking only what that backend needs (naming ``numba``,
    ``torch`` or ``export`` imports neither triton nor mamba_ssm)."""
    if backend in ("reference", "torch", "export"):
        return None
    if backend == "numba":
        return None if cpu_numba.available() else f"numba does not import ({cpu_numba.NUMBA_IMPORT_ERROR})"
    return backend_status()[backend]


_announced: set[tuple[str, str, str]] = set()


def _announce(device: torch.device, requested: str, chosen: str, why: str | None) -> None:
    key = (device.type, requested, chosen)
    if key in _announced:
        return
    _announced.add(key)
    if why:
        log.warning("selective scan: backend %r unavailable on %s (%s); using %r", requested, device.type, why, chosen)
    else:
        log.info("selective scan: using the %r backend on %s", chosen, device.type)


def resolve_backend(requested: str, device: torch.device, strict: bool = False) -> str:
    """Turn a requested backend name (or ``auto``, or the env var) into one that runs on ``device``."""
    if requested == "auto":
        requested = os.environ.get(ENV_VAR, "auto") or "auto"
    if requested == "auto":
        chosen = auto_backend(device)
        _announce(device, "auto", chosen, None)
        return chosen
    if requested not in BACKENDS:
        raise ValueError(f"backend: expected one of {('auto',) + BACKENDS}; got {requested!r}")
    why = _status_of(requested)
    if why is None and requested == "numba" and device.type != "cpu":
        why = f"numba kernels run on the CPU, tensors are on {device.type}"
    if why is None and requested == "triton" and device.type != "cuda" and triton_scan.interpreter_error():
        why = f"Triton kernels run on CUDA (or under TRITON_INTERPRET=1), tensors are on {device.type}"
    if why is None and requested == "mamba" and device.type != "cuda":
        why = f"mamba_ssm runs on CUDA, tensors are on {device.type}"
    if why is None:
        return requested
    if strict:
        raise BackendUnavailable(f"selective-scan backend {requested!r}: {why}")
    chosen = auto_backend(device)
    _announce(device, requested, chosen, why)
    return chosen


def _check(name: str, t: torch.Tensor | None, shape: tuple[int, ...] | None, floating: bool = True) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor; got {type(t).__name__}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor; got {t.dtype}")
    if t.is_complex():
        raise TypeError(f"{name}: complex tensors are not supported")
    if shape is not None and tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}; got {tuple(t.shape)}")


def _validate(u, delta, A, B, C, D, delta_bias) -> None:
    _check("u", u, None)
    if u.dim() != 3:
        raise ValueError(f"u: expected shape (batch, dim, length); got {tuple(u.shape)}")
    batch, dim, length = u.shape
    if length == 0:
        raise ValueError("u: the sequence length must be at least 1")
    _check("delta", delta, (batch, dim, length))
    _check("A", A, None)
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"A: expected shape ({dim}, state); got {tuple(A.shape)}")
    nstate = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        _check(name, t, None)
        if t.dim() == 3:
            _check(name, t, (batch, nstate, length))
        elif t.dim() == 4:
            if t.shape[0] != batch or t.shape[2:] != (nstate, length) or t.shape[1] == 0 or dim % t.shape[1]:
                raise ValueError(
                    f"{name}: expected shape ({batch}, groups, {nstate}, {length}) with groups dividing {dim}; "
                    f"got {tuple(t.shape)}"
                )
        else:
            raise ValueError(
                f"{name}: expected shape ({batch}, {nstate}, {length}) or grouped "
                f"({batch}, groups, {nstate}, {length}); got {tuple(t.shape)}"
            )
    if B.dim() != C.dim() or B.shape != C.shape:
        raise ValueError(f"B and C: expected the same shape; got {tuple(B.shape)} and {tuple(C.shape)}")
    _check("D", D, (dim,))
    _check("delta_bias", delta_bias, (dim,))
    devices = {t.device for t in (u, delta, A, B, C, D, delta_bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"all tensors must be on one device; got {sorted(str(d) for d in devices)}")


# The parameters of mamba_ssm's selective_scan_fn, shared on purpose by every backend (reference.py,
# torch_scan.py, cpu_numba.py): one interface.
def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    backend: str = "auto",
    strict: bool = False,
) -> torch.Tensor:
    """The selective scan of mamba_ssm's ``selective_scan_fn`` (no z gate, no last state).

    For each batch b, channel d and step t, with a state x in R^N starting at 0:
    ``dt = softplus?(delta[b,d,t] + delta_bias[d])``, ``x = exp(dt A[d]) * x + dt B[b,g,:,t] u[b,d,t]``,
    ``y[b,d,t] = <x, C[b,g,:,t]> + D[d] u[b,d,t]``, where g = d // (D / G) for grouped B/C.

    u, delta: (B, D, L); A: (D, N); B, C: (B, N, L) or (B, G, N, L); D, delta_bias: (D,).
    Returns y (B, D, L) in the dtype of u. Computed in float32, or float64 when u is float64 (triton: float32).
    ``backend``: "auto", "reference", "torch", "numba", "mamba", "triton" (CUDA; CPU tensors under
    TRITON_INTERPRET=1) or "export" (the form ONNX export uses: a few large tensor operations, see
    ``torch_scan.scan_core_chunked``); ``auto`` (on CUDA: mamba, else triton, else torch) reads the environment
    variable HANDSSCA_SCAN_BACKEND first). ``strict=True`` raises instead of falling back.
    """
    _validate(u, delta, A, B, C, D, delta_bias)
    name = resolve_backend(backend, u.device, strict)
    out_dtype = u.dtype
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    u_, delta_, A_, B_, C_ = (t.to(dtype) for t in (u, delta, A, B, C))
    D_ = None if D is None else D.to(dtype)
    bias_ = None if delta_bias is None else delta_bias.to(dtype)
    if name == "reference":
        y = selective_scan_reference(u_, delta_, A_, B_, C_, D_, bias_, delta_softplus)
        return y.to(out_dtype)
    if name == "mamba":
        fn = _mamba_fn()
        y = fn(
            u_.contiguous(),
            delta_.contiguous(),
            A_.contiguous(),
            B_.contiguous(),
            C_.contiguous(),
            D_,
            z=None,
            delta_bias=bias_,
            delta_softplus=delta_softplus,
        )
        return y.to(out_dtype)
    if B_.dim() == 3:
        B_, C_ = B_.unsqueeze(1), C_.unsqueeze(1)
    if name == "triton":
        return scan_op(u_, delta_, A_, B_, C_, D_, bias_, delta_softplus, "triton").to(out_dtype)
    if name == "numba":
        return scan_op(u_, delta_, A_, B_, C_, D_, bias_, delta_softplus, "numba").to(out_dtype)
    dt = delta_ if bias_ is None else delta_ + bias_[None, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    y = scan_core_chunked(u_, dt, A_, B_, C_) if name == "export" else scan_core_torch(u_, dt, A_, B_, C_)
    if D_ is not None:
        y = y + D_[None, :, None] * u_
    return y.to(out_dtype)
