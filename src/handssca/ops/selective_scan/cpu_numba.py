"""The fast CPU selective scan: numba kernels for forward and backward, parallel over channels.

Why numba: it ships as a wheel, so ``pip install`` gives every user a compiled kernel with no C
compiler, and it compiles for the machine's own vector width. The kernels are compiled on first use
(about 10 s, then cached on disk), never at import.

Forward runs the recurrence for blocks of 16 channels of one group at a time (the SIMD lanes, which
share B and C), with the state in registers, and saves the state every ``CHECKPOINT`` steps.
Backward walks the chunks in reverse, recomputes each chunk's states from its checkpoint (as mamba's CUDA kernel does), and runs the adjoint recurrence. Memory
is O(B D L / CHECKPOINT N) extra instead of O(B D L N). The float32 kernels use an exp written with
plain arithmetic (range reduction and a degree-6 polynomial, relative error ~2e-7) so that the
compiler can vectorise it over the state dimension; float64 uses libm's exp.
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:  # numba is a dependency, but a broken install must not break the package
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic, overload

    NUMBA_IMPORT_ERROR: str | None = None
except Exception as e:  # pragma: no cover - exercised only where numba is missing
    numba = None
    NUMBA_IMPORT_ERROR = f"{type(e).__name__}: {e}"

#: Steps between saved states in the forward pass (memory / recomputation trade-off).
CHECKPOINT = 64
#: Channels processed together as SIMD lanes by the forward kernel.
LANES = 16


def available() -> bool:
    """Whether the numba kernels can be used."""
    return numba is not None


if numba is not None:
    _LOG2E = np.float32(1.4426950408889634)
    _LN2_HI = np.float32(0.693145751953125)
    _LN2_LO = np.float32(1.428606765330187e-06)
    _LO = np.float32(-87.0)
    _HI = np.float32(88.0)
    _HALF = np.float32(0.5)
    _C2 = np.float32(1.0 / 2)
    _C3 = np.float32(1.0 / 6)
    _C4 = np.float32(1.0 / 24)
    _C5 = np.float32(1.0 / 120)
    _C6 = np.float32(1.0 / 720)
    _ONE = np.float32(1.0)

    @intrinsic
    def _int32_bits_as_float32(typingctx, x):
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            bits = args[0]
            if bits.type.width != 32:
                bits = builder.trunc(bits, ir.IntType(32))
            return builder.bitcast(bits, ir.FloatType())

        return types.float32(x), codegen

    def _exp(x):  # pragma: no cover - replaced by the overload inside numba
        return math.exp(x)

    @overload(_exp, inline="always", fastmath=True)
    def _exp_overload(x):
        if x == types.float32:

            def impl(x):
                x = min(max(x, _LO), _HI)
                k = np.floor(x * _LOG2E + _HALF)
                r = x - k * _LN2_HI - k * _LN2_LO
                p = _ONE + r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * _C6)))))
                return p * _int32_bits_as_float32((np.int32(k) + np.int32(127)) << np.int32(23))

            return impl
        return lambda x: math.exp(x)

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _forward_lanes_kernel(u, dt, A, Bt, Ct, y, ckpt, every, save):  # pragma: no cover - compiled
        """Forward with SIMD lanes over LANES channels of one group: B and C are shared by the lanes,
        so each step is exp + two FMAs per (state, lane) with no horizontal reduction."""
        batch, dim, length = u.shape
        groups = Bt.shape[1]
        nstate = A.shape[1]
        rep = dim // groups
        nblk = (rep + LANES - 1) // LANES
        zero = np.zeros(1, dtype=u.dtype)[0]
        for task in prange(batch * groups * nblk):
            b = task // (groups * nblk)
            g = (task // nblk) % groups
            d0 = g * rep + (task % nblk) * LANES
            w = min(LANES, (g + 1) * rep - d0)
            x = np.zeros((nstate, LANES), dtype=u.dtype)
            At = np.zeros((nstate, LANES), dtype=u.dtype)
            for i in range(nstate):
                for j in range(w):
                    At[i, j] = A[d0 + j, i]
            dtb = np.zeros((every, LANES), dtype=u.dtype)
            dub = np.zeros((every, LANES), dtype=u.dtype)
            yb = np.zeros((every, LANES), dtype=u.dtype)
            for t0 in range(0, length, every):
                t1 = min(length, t0 + every)
                if save:
                    for j in range(w):
                        for i in range(nstate):
                            ckpt[b, d0 + j, t0 // every, i] = x[i, j]
                for j in range(w):
                    for t in range(t0, t1):
                        dv = dt[b, d0 + j, t]
                        dtb[t - t0, j] = dv
                        dub[t - t0, j] = dv * u[b, d0 + j, t]
                for t in range(t0, t1):
                    tt = t - t0
                    for j in range(LANES):
                        yb[tt, j] = zero
                    for i in range(nstate):
                        bi = Bt[b, g, t, i]
                        ci = Ct[b, g, t, i]
                        for j in range(LANES):
                            xv = _exp(dtb[tt, j] * At[i, j]) * x[i, j] + dub[tt, j] * bi
                            x[i, j] = xv
                            yb[tt, j] += xv * ci
                for j in range(w):
                    for t in range(t0, t1):
                        y[b, d0 + j, t] = yb[t - t0, j]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True)
    def _backward_kernel(
        u, dt, A, Bt, Ct, gy, ckpt, every, parts, du, ddt, dA_part, dB_part, dC_part
    ):  # pragma: no cover - compiled
        batch, dim, length = u.shape
        groups = Bt.shape[1]
        nstate = A.shape[1]
        rep = dim // groups
        nchunks = ckpt.shape[2]
        per = -(-rep // parts)
        zero = np.zeros(1, dtype=u.dtype)[0]
        for task in prange(batch * groups * parts):
            b = task // (groups * parts)
            g = (task % (groups * parts)) // parts
            p = task % parts
            abuf = np.empty((every, nstate), dtype=u.dtype)
            xbuf = np.empty((every + 1, nstate), dtype=u.dtype)
            hc = np.empty(nstate, dtype=u.dtype)
            dA_loc = np.empty(nstate, dtype=u.dtype)
            d_end = min(g * rep + (p + 1) * per, (g + 1) * rep)
            for d in range(g * rep + p * per, d_end):
                hc[:] = zero
                dA_loc[:] = zero
                for c in range(nchunks - 1, -1, -1):
                    t0 = c * every
                    t1 = min(length, t0 + every)
                    for i in range(nstate):
                        xbuf[0, i] = ckpt[b, d, c, i]
                    for t in range(t0, t1):
                        j = t - t0
                        dtv = dt[b, d, t]
                        duv = dtv * u[b, d, t]
                        for i in range(nstate):
                            a = _exp(dtv * A[d, i])
                            abuf[j, i] = a
                            xbuf[j + 1, i] = a * xbuf[j, i] + duv * Bt[b, g, t, i]
                    for t in range(t1 - 1, t0 - 1, -1):
                        j = t - t0
                        g_y = gy[b, d, t]
                        dtv = dt[b, d, t]
                        uv = u[b, d, t]
                        duv = dtv * uv
                        s_b = zero
                        s_a = zero
                        for i in range(nstate):
                            h = g_y * Ct[b, g, t, i] + hc[i]
                            dC_part[b, g, p, t, i] += g_y * xbuf[j + 1, i]
                            dB_part[b, g, p, t, i] += h * duv
                            s_b += h * Bt[b, g, t, i]
                            ha = h * xbuf[j, i] * abuf[j, i]
                            s_a += ha * A[d, i]
                            dA_loc[i] += ha * dtv
                            hc[i] = abuf[j, i] * h
                        ddt[b, d, t] = s_a + s_b * uv
                        du[b, d, t] = dtv * s_b
                for i in range(nstate):
                    dA_part[b, d, i] = dA_loc[i]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _sync_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


class _NumbaScanFn(torch.autograd.Function):
    """Autograd wrapper: inputs u, dt (b,d,l); A (d,n); Bt, Ct (b,g,l,n); output (b,d,l)."""

    @staticmethod
    def forward(ctx, u, dt, A, Bt, Ct):  # type: ignore[override]
        save = any(ctx.needs_input_grad)
        batch, dim, length = u.shape
        nchunks = -(-length // CHECKPOINT)
        un, dtn, An, Btn, Ctn = (_np(t) for t in (u, dt, A, Bt, Ct))
        y = np.empty_like(un)
        shape = (batch, dim, nchunks, A.shape[1]) if save else (1, 1, 1, 1)
        ckpt = np.empty(shape, dtype=un.dtype)
        _sync_threads()
        _forward_lanes_kernel(un, dtn, An, Btn, Ctn, y, ckpt, CHECKPOINT, save)
        if save:
            ctx.save_for_backward(u, dt, A, Bt, Ct, torch.from_numpy(ckpt))
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, gy):  # type: ignore[override]
        u, dt, A, Bt, Ct, ckpt = ctx.saved_tensors
        batch, dim, length = u.shape
        groups, nstate = Bt.shape[1], A.shape[1]
        _sync_threads()
        threads = numba.get_num_threads()
        parts = max(1, min(dim // groups, -(-2 * threads // (batch * groups)))) if batch * groups < 2 * threads else 1
        un = _np(u)
        du = np.empty_like(un)
        ddt = np.empty_like(un)
        dA_part = np.empty((batch, dim, nstate), dtype=un.dtype)
        dB_part = np.zeros((batch, groups, parts, length, nstate), dtype=un.dtype)
        dC_part = np.zeros_like(dB_part)
        _backward_kernel(
            un, _np(dt), _np(A), _np(Bt), _np(Ct), _np(gy), _np(ckpt), CHECKPOINT, parts,
            du, ddt, dA_part, dB_part, dC_part,
        )  # fmt: skip
        dB = torch.from_numpy(dB_part).sum(2) if parts > 1 else torch.from_numpy(dB_part[:, :, 0])
        dC = torch.from_numpy(dC_part).sum(2) if parts > 1 else torch.from_numpy(dC_part[:, :, 0])
        return torch.from_numpy(du), torch.from_numpy(ddt), torch.from_numpy(dA_part).sum(0), dB, dC


def scan_core_numba(u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """y_t = <x_t, C_t> with x_t = exp(dt_t A) x_{t-1} + dt_t u_t B_t, on the CPU with numba.

    u, dt: (b, d, l); A: (d, n); B, C: (b, g, n, l). All one floating dtype. Returns (b, d, l).
    """
    return _NumbaScanFn.apply(u, dt, A, B.transpose(2, 3).contiguous(), C.transpose(2, 3).contiguous())
