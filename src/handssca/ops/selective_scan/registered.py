"""The selective scan as one registered PyTorch operator, so ``torch.compile`` and ``torch.export``
see a single node instead of tracing into numba (which they cannot).

Two operators, each with a fake (meta) implementation for tracing:

- ``handssca::scan_fwd(u, delta, A, B, C, D, delta_bias, softplus, save, impl) -> (y, states)``
- ``handssca::scan_bwd(u, delta, A, B, C, D, delta_bias, softplus, gy, states, impl) -> 7 gradients``

``scan_fwd``'s autograd formula (``register_autograd``) calls ``scan_bwd``. Eager code (not under
``torch.compile`` / ``torch.export``) runs the same kernels and formula through a plain
``autograd.Function`` instead: the operator's first eager call would import torch's compiler stack. ``states`` are the
kernel's checkpoints: (b, d, ceil(l / CHECKPOINT), n) when ``save``, else a (1, 1, 1, 1)
placeholder. ``impl`` names the kernels: ``numba`` (CPU) or ``triton`` (CUDA, or CPU tensors under
``TRITON_INTERPRET=1``). u, delta: (b, d, l); A: (d, n); B, C: (b, g, n, l); D, delta_bias: (d,).

The fused 4-direction cross-scan of the SSCA block (``cross_numba``, CPU) is registered the same way:
``handssca::cross_scan_fwd(u2, delta, A, B, C, D, delta_bias, softplus, save) -> (y2, states)`` and
``handssca::cross_scan_bwd``. Registering an operator is a table entry, not work: nothing compiles
until a kernel first runs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from handssca.ops.selective_scan import cpu_numba, cross_numba

IMPLS = ("numba", "triton")


def _chunk(impl: str) -> int:
    if impl == "triton":
        from handssca.ops.selective_scan import triton_scan

        return triton_scan.CHUNK
    return cpu_numba.CHECKPOINT


def _states_shape(u: Tensor, A: Tensor, save: bool, impl: str) -> tuple[int, int, int, int]:
    if not save:
        return (1, 1, 1, 1)
    batch, dim, length = u.shape
    chunk = _chunk(impl)
    return (batch, dim, (length + chunk - 1) // chunk, A.shape[1])


def _scan_fwd_impl(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    softplus: bool,
    save: bool,
    impl: str,
) -> tuple[Tensor, Tensor]:
    """y (b, d, l) and the states the backward starts from (see the module docstring)."""
    if impl == "triton":
        from handssca.ops.selective_scan import triton_scan

        return triton_scan.forward(u, delta, A, B, C, D, delta_bias, softplus, save)
    if u.device.type != "cpu":
        raise RuntimeError(f"handssca::scan_fwd: the numba kernels run on the CPU; tensors are on {u.device}")
    return cpu_numba.forward(u, delta, A, B, C, D, delta_bias, softplus, save)


scan_fwd = torch.library.custom_op("handssca::scan_fwd", _scan_fwd_impl, mutates_args=())


@scan_fwd.register_fake
def _scan_fwd_fake(u, delta, A, B, C, D, delta_bias, softplus, save, impl):
    states_dtype = torch.float32 if impl == "triton" else u.dtype  # the Triton kernels keep float32 states
    states = u.new_empty(_states_shape(u, A, save, impl), dtype=states_dtype)
    return torch.empty_like(u, memory_format=torch.contiguous_format), states


def _scan_bwd_impl(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    softplus: bool,
    gy: Tensor,
    states: Tensor,
    impl: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of (u, delta, A, B, C, D, delta_bias), each in its input's shape."""
    if impl == "triton":
        from handssca.ops.selective_scan import triton_scan

        return triton_scan.backward(u, delta, A, B, C, D, delta_bias, softplus, gy, states)
    if u.device.type != "cpu":
        raise RuntimeError(f"handssca::scan_bwd: the numba kernels run on the CPU; tensors are on {u.device}")
    return cpu_numba.backward(u, delta, A, B, C, D, delta_bias, softplus, gy, states)


scan_bwd = torch.library.custom_op("handssca::scan_bwd", _scan_bwd_impl, mutates_args=())


@scan_bwd.register_fake
def _scan_bwd_fake(u, delta, A, B, C, D, delta_bias, softplus, gy, states, impl):
    return tuple(torch.empty_like(t, memory_format=torch.contiguous_format) for t in (u, delta, A, B, C, D, delta_bias))


def _setup_context(ctx, inputs, output) -> None:
    u, delta, A, B, C, D, delta_bias, softplus, save, impl = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero-filled gradient for the states
    ctx.softplus, ctx.impl, ctx.saved = softplus, impl, save


def _backward(ctx, gy, _gstates, bwd=None):
    if not ctx.saved:
        raise RuntimeError("handssca::scan_fwd ran with save=False (no gradient was expected); cannot differentiate")
    if gy is None:  # the output took no part in the loss
        return (None,) * 10
    u, delta, A, B, C, D, delta_bias, states = ctx.saved_tensors
    grads = (bwd or scan_bwd)(u, delta, A, B, C, D, delta_bias, ctx.softplus, gy.contiguous(), states, ctx.impl)
    return (*grads, None, None, None)


scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def _cross_scan_fwd_impl(
    u2: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    softplus: bool,
    save: bool,
) -> tuple[Tensor, Tensor]:
    """The fused 4-direction scan (``cross_numba``): y2 (b, 2, c, l) and its checkpoints."""
    if u2.device.type != "cpu":
        raise RuntimeError(f"handssca::cross_scan_fwd: the numba kernels run on the CPU; tensors are on {u2.device}")
    return cross_numba.forward(u2, delta, A, B, C, D, delta_bias, softplus, save)


cross_scan_fwd = torch.library.custom_op("handssca::cross_scan_fwd", _cross_scan_fwd_impl, mutates_args=())


@cross_scan_fwd.register_fake
def _cross_scan_fwd_fake(u2, delta, A, B, C, D, delta_bias, softplus, save):
    batch, _, _, length = u2.shape
    chunks = (length + cpu_numba.CHECKPOINT - 1) // cpu_numba.CHECKPOINT
    shape = (batch, A.shape[0], chunks, A.shape[1]) if save else (1, 1, 1, 1)
    return torch.empty_like(u2, memory_format=torch.contiguous_format), u2.new_empty(shape)


def _cross_scan_bwd_impl(
    u2: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    softplus: bool,
    gy2: Tensor,
    states: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of (u2, delta, A, B, C, D, delta_bias) of :func:`cross_scan_fwd`."""
    return cross_numba.backward(u2, delta, A, B, C, D, delta_bias, softplus, gy2, states)


cross_scan_bwd = torch.library.custom_op("handssca::cross_scan_bwd", _cross_scan_bwd_impl, mutates_args=())


@cross_scan_bwd.register_fake
def _cross_scan_bwd_fake(u2, delta, A, B, C, D, delta_bias, softplus, gy2, states):
    return tuple(
        torch.empty_like(t, memory_format=torch.contiguous_format) for t in (u2, delta, A, B, C, D, delta_bias)
    )


def _cross_setup_context(ctx, inputs, output) -> None:
    u2, delta, A, B, C, D, delta_bias, softplus, save = inputs
    ctx.save_for_backward(u2, delta, A, B, C, D, delta_bias, output[1])
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero-filled gradient for the states
    ctx.softplus, ctx.saved = softplus, save


def _cross_backward(ctx, gy2, _gstates, bwd=None):
    if not ctx.saved:
        raise RuntimeError("handssca::cross_scan_fwd ran with save=False (no gradient was expected)")
    if gy2 is None:  # the output took no part in the loss
        return (None,) * 9
    u2, delta, A, B, C, D, delta_bias, states = ctx.saved_tensors
    grads = (bwd or cross_scan_bwd)(u2, delta, A, B, C, D, delta_bias, ctx.softplus, gy2.contiguous(), states)
    return (*grads, None, None)


cross_scan_fwd.register_autograd(_cross_backward, setup_context=_cross_setup_context)


class _EagerScan(torch.autograd.Function):
    """The scan outside ``torch.compile`` / ``torch.export``: the same kernels and gradient formula as the
    registered operator, without the operator's dispatch (whose first call imports torch's compiler
    stack, ~1.4 s, and Triton when it is installed)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, delta_bias, softplus, save, impl):
        y, states = _scan_fwd_impl(u, delta, A, B, C, D, delta_bias, softplus, save, impl)
        _setup_context(ctx, (u, delta, A, B, C, D, delta_bias, softplus, save, impl), (y, states))
        return y, states

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernels' gradients are not differentiable
    def backward(ctx, gy, _gstates):
        return _backward(ctx, gy, _gstates, bwd=_scan_bwd_impl)


class _EagerCrossScan(torch.autograd.Function):
    """:class:`_EagerScan` for the fused cross-scan."""

    @staticmethod
    def forward(ctx, u2, delta, A, B, C, D, delta_bias, softplus, save):
        y2, states = _cross_scan_fwd_impl(u2, delta, A, B, C, D, delta_bias, softplus, save)
        _cross_setup_context(ctx, (u2, delta, A, B, C, D, delta_bias, softplus, save), (y2, states))
        return y2, states

    @staticmethod
    @torch.autograd.function.once_differentiable  # the kernels' gradients are not differentiable
    def backward(ctx, gy2, _gstates):
        return _cross_backward(ctx, gy2, _gstates, bwd=_cross_scan_bwd_impl)


def cross_scan_op(
    u2: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    delta_softplus: bool,
) -> Tensor:
    """The fused 4-direction scan (see ``cross_numba``): u2 (b, 2, c, l), the map in row-major and in
    column-major order; delta (b, 4, c, l), B, C (b, 4, n, l) at each direction's source positions;
    A (4c, n); D, delta_bias (4c,), in the kernel order (rows, rows reversed, columns, columns
    reversed). Returns y2 (b, 2, c, l): each source's two directions summed at its positions."""
    save = torch.is_grad_enabled() and any(t.requires_grad for t in (u2, delta, A, B, C, D, delta_bias))
    args = (u2, delta, A, B, C, D, delta_bias, bool(delta_softplus), save)
    if torch.compiler.is_compiling():  # one node for the compiler
        return cross_scan_fwd(*args)[0]
    return _EagerCrossScan.apply(*args)[0]


def scan_op(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    impl: str,
) -> Tensor:
    """The selective scan through the registered operator; B, C (b, g, n, l), D / delta_bias may be None."""
    zeros = u.new_zeros(u.shape[1])
    D = zeros if D is None else D
    delta_bias = zeros if delta_bias is None else delta_bias
    save = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, D, delta_bias))
    args = (u, delta, A, B, C, D, delta_bias, bool(delta_softplus), save, impl)
    if torch.compiler.is_compiling():  # one node for the compiler
        return scan_fwd(*args)[0]
    return _EagerScan.apply(*args)[0]


__all__ = ["IMPLS", "cross_scan_bwd", "cross_scan_fwd", "cross_scan_op", "scan_bwd", "scan_fwd", "scan_op"]
