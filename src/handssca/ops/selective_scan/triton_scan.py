"""The selective scan in Triton: forward and backward kernels for CUDA GPUs without mamba_ssm.

One program per (batch, channel) walks the sequence in chunks of CHUNK steps. Inside a chunk the
recurrence x_t = a_t x_{t-1} + b_t (a_t = exp(dt_t A), b_t = dt_t u_t B_t, over the N states) is a
``tl.associative_scan`` of (a, b) pairs; the state entering the chunk is carried in registers and
saved (b, d, L / CHUNK, N), so the backward needs O(B D N L / CHUNK) memory. The backward walks the
chunks in reverse: it recomputes a chunk's states from the saved one, runs the adjoint recurrence
g_t = C_t gy_t + a_{t+1} g_{t+1} as a reversed associative scan, and adds dB and dC of the channels
of a group with atomic adds. dt = softplus(delta + delta_bias) and the D u term are computed inside.
State and arithmetic are float32 whatever the input dtype (bf16 / fp16 inputs are read as float32).

The same kernels run on CPU tensors under Triton's interpreter (``TRITON_INTERPRET=1``), which is
how the tests check them without a GPU. Kernels are defined on first use (``_kernels``), never at
import: Triton reads ``TRITON_INTERPRET`` when a kernel is defined.
"""

from __future__ import annotations

import functools
import os

import torch

#: Steps per chunk (the associative scan's length; states are saved once per chunk).
CHUNK = 64

_KERNELS: dict[bool, tuple] = {}


@functools.cache
def import_error() -> str | None:
    """None if triton imports, else why not (asked once per process)."""
    try:
        import triton  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the install
        return f"triton does not import ({type(e).__name__}: {e}); pip install triton"
    return None


def interpreting() -> bool:
    """Whether Triton runs kernels with its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def interpreter_error() -> str | None:
    """None if Triton's interpreter can run the kernels on CPU tensors here, else why not.

    TRITON_INTERPRET=1 must be set before triton is first imported: triton.language's own helpers
    (``tl.zeros``, ``tl.sum``) are compiled-mode functions otherwise, and the interpreter cannot call them.
    """
    if not interpreting():
        return "TRITON_INTERPRET=1 is not set"
    import triton.language
    from triton.runtime.jit import JITFunction

    if isinstance(triton.language.zeros, JITFunction):
        return "TRITON_INTERPRET=1 was set after triton was imported (set it before the process starts)"
    return None


def _kernels():
    """(triton, forward kernel, backward kernel), defined on first use for the current mode."""
    key = interpreting()
    if key not in _KERNELS:
        import triton
        import triton.language

        # the kernels look their helpers and ``tl`` up in this module's globals when they are traced
        globals()["tl"] = triton.language
        globals()["_combine"] = triton.jit(_combine_src)
        globals()["_softplus"] = triton.jit(_softplus_src)
        _KERNELS[key] = (triton, triton.jit(_forward_src), triton.jit(_backward_src))
    return _KERNELS[key]


# Kernel sources: plain functions until _kernels() hands them to triton.jit. ``tl``, ``_combine``
# and ``_softplus`` are module globals set there.
# ruff: noqa: F821


def _combine_src(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


def _softplus_src(x):
    # max(x, 0) + log1p(exp(-|x|)), log1p by Kahan's correction (tl has no log1p everywhere)
    e = tl.exp(-tl.abs(x))
    w = 1.0 + e
    lp = tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0))
    return tl.maximum(x, 0.0) + lp


def _forward_src(
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    bias_ptr,
    y_ptr,
    st_ptr,
    dim,
    length,
    nstate,
    rep,
    nchunks,
    SOFTPLUS: tl.constexpr,
    SAVE: tl.constexpr,
    CHUNK_T: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0)
    d = tl.program_id(1)
    groups = dim // rep
    g = d // rep
    offs_t = tl.arange(0, CHUNK_T)
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < nstate
    A = tl.load(A_ptr + d * nstate + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    Dd = tl.load(D_ptr + d).to(tl.float32)
    bd = tl.load(bias_ptr + d).to(tl.float32)
    row = (b * dim + d) * length
    bc = (b * groups + g) * nstate * length
    carry = tl.zeros([BLOCK_N], dtype=tl.float32)
    for c in range(nchunks):
        t = c * CHUNK_T + offs_t
        mask_t = t < length
        if SAVE:
            tl.store(st_ptr + ((b * dim + d) * nchunks + c) * nstate + offs_n, carry, mask=mask_n)
        u = tl.load(u_ptr + row + t, mask=mask_t, other=0.0).to(tl.float32)
        dt = tl.load(delta_ptr + row + t, mask=mask_t, other=0.0).to(tl.float32) + bd
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_t, dt, 0.0)  # steps past the end: a = 1, b = 0
        m2 = mask_t[:, None] & mask_n[None, :]
        bc_off = bc + offs_n[None, :] * length + t[:, None]
        Bt = tl.load(B_ptr + bc_off, mask=m2, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + bc_off, mask=m2, other=0.0).to(tl.float32)
        a = tl.exp(dt[:, None] * A[None, :])
        bx = (dt * u)[:, None] * Bt
        acum, h = tl.associative_scan((a, bx), 0, _combine)
        x = h + acum * carry[None, :]
        y = tl.sum(x * Ct, axis=1) + Dd * u
        tl.store(y_ptr + row + t, y, mask=mask_t)
        carry = tl.sum(tl.where((offs_t == CHUNK_T - 1)[:, None], x, 0.0), axis=0)


def _backward_src(
    u_ptr,
    delta_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    D_ptr,
    bias_ptr,
    gy_ptr,
    st_ptr,
    du_ptr,
    ddelta_ptr,
    dA_ptr,
    dB_ptr,
    dC_ptr,
    dim,
    length,
    nstate,
    rep,
    nchunks,
    SOFTPLUS: tl.constexpr,
    CHUNK_T: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0)
    d = tl.program_id(1)
    groups = dim // rep
    g = d // rep
    offs_t = tl.arange(0, CHUNK_T)
    offs_n = tl.arange(0, BLOCK_N)
    mask_n = offs_n < nstate
    A = tl.load(A_ptr + d * nstate + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    Dd = tl.load(D_ptr + d).to(tl.float32)
    bd = tl.load(bias_ptr + d).to(tl.float32)
    row = (b * dim + d) * length
    bc = (b * groups + g) * nstate * length
    hc = tl.zeros([BLOCK_N], dtype=tl.float32)  # a_{t1} g_{t1}, from the chunk after this one
    dA_acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for cc in range(nchunks):
        c = nchunks - 1 - cc
        t0 = c * CHUNK_T
        t = t0 + offs_t
        mask_t = t < length
        m2 = mask_t[:, None] & mask_n[None, :]
        x0 = tl.load(st_ptr + ((b * dim + d) * nchunks + c) * nstate + offs_n, mask=mask_n, other=0.0)
        u = tl.load(u_ptr + row + t, mask=mask_t, other=0.0).to(tl.float32)
        raw = tl.load(delta_ptr + row + t, mask=mask_t, other=0.0).to(tl.float32) + bd
        if SOFTPLUS:
            dt = _softplus(raw)
            slope = tl.sigmoid(raw)
        else:
            dt = raw
            slope = tl.full([CHUNK_T], 1.0, tl.float32)
        dt = tl.where(mask_t, dt, 0.0)
        gy = tl.load(gy_ptr + row + t, mask=mask_t, other=0.0).to(tl.float32)
        bc_off = bc + offs_n[None, :] * length + t[:, None]
        Bt = tl.load(B_ptr + bc_off, mask=m2, other=0.0).to(tl.float32)
        Ct = tl.load(C_ptr + bc_off, mask=m2, other=0.0).to(tl.float32)
        a = tl.exp(dt[:, None] * A[None, :])
        # the states before each step: the chunk's scan over the inputs shifted by one step
        tp = t - 1
        mask_p = (offs_t > 0) & mask_t
        up = tl.load(u_ptr + row + tp, mask=mask_p, other=0.0).to(tl.float32)
        dtp = tl.load(delta_ptr + row + tp, mask=mask_p, other=0.0).to(tl.float32) + bd
        if SOFTPLUS:
            dtp = _softplus(dtp)
        dtp = tl.where(mask_p, dtp, 0.0)
        Bp = tl.load(B_ptr + bc_off - 1, mask=mask_p[:, None] & mask_n[None, :], other=0.0).to(tl.float32)
        acum_p, h_p = tl.associative_scan((tl.exp(dtp[:, None] * A[None, :]), (dtp * up)[:, None] * Bp), 0, _combine)
        x_prev = h_p + acum_p * x0[None, :]
        x = a * x_prev + (dt * u)[:, None] * Bt
        # adjoint: g_t = C_t gy_t + a_{t+1} g_{t+1}, reversed scan; a_{t+1} of the chunk's last step is 1 here
        tn = t + 1
        mask_nx = (offs_t < CHUNK_T - 1) & (tn < length)
        dtn = tl.load(delta_ptr + row + tn, mask=mask_nx, other=0.0).to(tl.float32) + bd
        if SOFTPLUS:
            dtn = _softplus(dtn)
        dtn = tl.where(mask_nx, dtn, 0.0)
        alpha = tl.exp(dtn[:, None] * A[None, :])
        pcum, loc = tl.associative_scan((alpha, gy[:, None] * Ct), 0, _combine, reverse=True)
        gx = loc + pcum * hc[None, :]
        gx = tl.where(m2, gx, 0.0)
        hc = tl.sum(tl.where((offs_t == 0)[:, None], a * gx, 0.0), axis=0)
        gxa = gx * x_prev * a
        s_a = tl.sum(gxa * A[None, :], axis=1)
        s_b = tl.sum(gx * Bt, axis=1)
        tl.store(ddelta_ptr + row + t, (s_a + s_b * u) * slope, mask=mask_t)
        tl.store(du_ptr + row + t, dt * s_b + Dd * gy, mask=mask_t)
        dA_acc += tl.sum(gxa * dt[:, None], axis=0)
        tl.atomic_add(dB_ptr + bc_off, gx * (dt * u)[:, None], mask=m2)
        tl.atomic_add(dC_ptr + bc_off, gy[:, None] * x, mask=m2)
    tl.store(dA_ptr + (b * dim + d) * nstate + offs_n, dA_acc, mask=mask_n)


def _block_n(nstate: int) -> int:
    return max(2, 1 << (nstate - 1).bit_length())


def forward(u, delta, A, B, C, D, delta_bias, softplus: bool, save: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """y (b, d, l) float32 and the states entering each chunk (b, d, ceil(l / CHUNK), n) (a
    (1, 1, 1, 1) placeholder without ``save``). u, delta (b, d, l); A (d, n); B, C (b, g, n, l); D, delta_bias (d,)."""
    _, fwd, _ = _kernels()
    batch, dim, length = u.shape
    groups, nstate = B.shape[1], A.shape[1]
    nchunks = -(-length // CHUNK)
    y = torch.empty(batch, dim, length, device=u.device, dtype=torch.float32)
    shape = (batch, dim, nchunks, nstate) if save else (1, 1, 1, 1)
    states = torch.zeros(shape, device=u.device, dtype=torch.float32)
    args = [t.contiguous() for t in (u, delta, A, B, C, D, delta_bias)]
    fwd[(batch, dim)](
        *args,
        y,
        states,
        dim,
        length,
        nstate,
        dim // groups,
        nchunks,
        bool(softplus),
        bool(save),
        CHUNK,
        _block_n(nstate),
    )
    return y.to(u.dtype), states


def backward(u, delta, A, B, C, D, delta_bias, softplus: bool, gy, states) -> tuple[torch.Tensor, ...]:
    """Gradients of (u, delta, A, B, C, D, delta_bias) from :func:`forward`'s saved states."""
    _, _, bwd = _kernels()
    batch, dim, length = u.shape
    groups, nstate = B.shape[1], A.shape[1]
    nchunks = states.shape[2]
    f32 = dict(device=u.device, dtype=torch.float32)
    du = torch.empty(batch, dim, length, **f32)
    ddelta = torch.empty(batch, dim, length, **f32)
    dA_part = torch.empty(batch, dim, nstate, **f32)
    dB = torch.zeros(batch, groups, nstate, length, **f32)
    dC = torch.zeros(batch, groups, nstate, length, **f32)
    args = [t.contiguous() for t in (u, delta, A, B, C, D, delta_bias, gy)]
    bwd[(batch, dim)](
        *args,
        states.contiguous(),
        du,
        ddelta,
        dA_part,
        dB,
        dC,
        dim,
        length,
        nstate,
        dim // groups,
        nchunks,
        bool(softplus),
        CHUNK,
        _block_n(nstate),
    )
    dD = torch.einsum("bdl,bdl->d", gy.float(), u.float())
    dbias = ddelta.sum((0, 2))
    cast = lambda g, like: g.to(like.dtype)  # noqa: E731
    return (
        cast(du, u),
        cast(ddelta, delta),
        cast(dA_part.sum(0), A),
        cast(dB, B),
        cast(dC, C),
        cast(dD, D),
        cast(dbias, delta_bias),
    )
