"""The fast CPU selective scan: numba kernels for forward and backward, parallel over channels.

Why numba: it ships as a wheel, so ``pip install`` gives every user a compiled kernel with no C
compiler, and it compiles for the machine's own vector width. The kernels are compiled on first use
(about 10 s, then cached on disk), never at import.

Forward runs the recurrence for blocks of 16 channels of one group at a time (the SIMD lanes, which
share B and C), with the state in registers, and saves the state every ``CHECKPOINT`` steps. The
kernels also compute dt = softplus(delta + delta_bias) and the D u term, so a scan is one pass
over its inputs in each direction.
Backward (``_backward_lanes_kernel``, shared with the fused cross-scan of ``cross_numba``) runs the
same 16-channel lanes, walks the chunks in reverse, recomputes each chunk's states from its checkpoint
(as mamba's CUDA kernel does), and runs the adjoint recurrence. Memory is O(B D L / CHECKPOINT N)
extra instead of O(B D L N). The float32 kernels use an exp written with
plain arithmetic (range reduction and a degree-6 polynomial, relative error ~2e-7) so that the
compiler can vectorise it over the state dimension, and softplus likewise (exp and an atanh
series for log1p); float64 uses libm.
``forward`` and ``backward`` are plain functions; ``registered.py`` makes them one PyTorch operator
for torch.compile and torch.export, and calls them through a plain autograd.Function in eager code.
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
#: Channels processed together as SIMD lanes by the forward kernels and the cross-scan's backward.
LANES = 16


def available() -> bool:
    """Whether the numba kernels can be used."""
    return numba is not None


if numba is not None:
    # float32 polynomial coefficients of the vectorisable exp and log1p below (alike in shape, not in value)
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

    _TWO = np.float32(2.0)
    _L3 = np.float32(1.0 / 3)
    _L5 = np.float32(1.0 / 5)
    _L7 = np.float32(1.0 / 7)
    _L9 = np.float32(1.0 / 9)
    _L11 = np.float32(1.0 / 11)
    _L13 = np.float32(1.0 / 13)

    def _softplus(x):  # pragma: no cover - replaced by the overload inside numba
        return math.log1p(math.exp(-abs(x))) + max(x, 0.0)

    @overload(_softplus, inline="always", fastmath=True)
    def _softplus_overload(x):
        if x == types.float32:

            def impl(x):
                # max(x, 0) + log1p(e) with e = exp(-|x|) in (0, 1]: log1p(e) = 2 atanh(s), s = e / (2 + e)
                # <= 1/3, by its odd series to s^13 (error < 1e-8); vectorises like _exp
                e = _exp(-abs(x))
                s = e / (_TWO + e)
                s2 = s * s
                p = _ONE + s2 * (_L3 + s2 * (_L5 + s2 * (_L7 + s2 * (_L9 + s2 * (_L11 + s2 * _L13)))))
                return max(x, np.float32(0.0)) + _TWO * s * p

            return impl
        return lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)

    @njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _forward_lanes_kernel(
        u, delta, A, Bt, Ct, Dv, bias, softplus, y, ckpt, every, save
    ):  # pragma: no cover - compiled
        """Forward with SIMD lanes over LANES channels of one group: B and C are shared by the lanes,
        so each step is exp + two FMAs per (state, lane) with no horizontal reduction. dt =
        softplus(delta + bias) and the D u term are computed here too (no extra passes)."""
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
            row = np.zeros(every, dtype=u.dtype)
            for t0 in range(0, length, every):
                t1 = min(length, t0 + every)
                if save:
                    for j in range(w):
                        for i in range(nstate):
                            ckpt[b, d0 + j, t0 // every, i] = x[i, j]
                n = t1 - t0
                for j in range(w):
                    bj = bias[d0 + j]
                    # 1-D row views indexed from 0: numba then knows the index is not negative
                    # and LLVM loads contiguously instead of gathering (negative-index wraparound)
                    drow = delta[b, d0 + j, t0:t1]
                    urow = u[b, d0 + j, t0:t1]
                    if softplus:  # contiguous and vectorised over t, then transposed into the lanes
                        for tt in range(n):
                            row[tt] = _softplus(drow[tt] + bj)
                    else:
                        for tt in range(n):
                            row[tt] = drow[tt] + bj
                    for tt in range(n):
                        dtb[tt, j] = row[tt]
                        dub[tt, j] = row[tt] * urow[tt]
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
                    dj = Dv[d0 + j]
                    urow = u[b, d0 + j, t0:t1]
                    yrow = y[b, d0 + j, t0:t1]
                    for tt in range(n):
                        yrow[tt] = yb[tt, j] + dj * urow[tt]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _backward_lanes_kernel(
        u2,
        delta,
        A,
        Bt,
        Ct,
        Dv,
        bias,
        softplus,
        gy2,
        ckpt,
        every,
        ndir,
        parts,
        du2,
        ddelta,
        dA_part,
        dB_part,
        dC_part,
        dD_part,
        dbias_part,
        ab,
        xp,
        xc,
        dCs,
        dBs,
        hcs,
        dAs,
        At,
        lanep,
        dtl,
        dul,
        gyl,
        ul,
        spl,
        sal,
        sbl,
    ):  # pragma: no cover - compiled
        """Backward of ``ndir`` scans per source sequence: S sources u2 (b, S, c, l), K = S ndir
        directions with delta (b, K, c, l), Bt, Ct (b, K, l, n) (contiguous), A (K c, n), Dv, bias (K c,),
        checkpoints (b, K c, chunks, n) of the forward. Direction k = ndir s + r reads source s, backwards
        when r = 1: ndir = 2 is the cross-scan (``cross_numba``), ndir = 1 the plain grouped scan with
        its groups as sources. Tasks (batch, source, part of the channel blocks), each running its
        source's directions one after the other, LANES channels as SIMD lanes. gy2 (b, S, c, l): the
        output gradient at each source's positions; du2 (b, S, c, l): du at each source's positions;
        ddelta (b, K, c, l); dA_part (b, K c, n); dB_part, dC_part (b, K, parts, n, l): each column
        written once; dD_part, dbias_part (b, K c), zeroed by the caller.

        The rest is per-task scratch (first index the task) that the caller allocates, so that the
        loop body takes no view of an array: numba then finds no aliases in it and marks the parallel
        body's array arguments ``noalias``, and LLVM vectorises the loops over the lanes without
        runtime alias checks (the previous kernel took row views, compiled its adjoint to scalar code
        and ran 2.5-3x slower). Hence every array written here must be its own allocation, never a
        view of an input (``backward`` allocates them all).
        ab (T, every, n, LANES) the decays; xp (T, every, n, LANES) the recomputed states before each
        step; xc (T, n, LANES) the running state; dCs, dBs (T, every, n) the chunk's dC, dB summed
        over this task's channels; hcs, dAs (T, blocks, n, LANES) the adjoint states and dA carried
        between chunks; At (T, n, LANES); lanep (T, 2, LANES) each lane's delta_bias and D;
        dtl, dul, gyl, ul, spl, sal, sbl (T, every, LANES): dt, dt u, dy, u, the softplus slope, and
        the sums over states of the adjoint times dA/d(dt) and times B (separate arrays: rows of one
        array may alias each other as far as LLVM knows, and it then left these loops scalar)."""
        batch, nsrc, dim, length = u2.shape
        nstate = A.shape[1]
        nchunks = ckpt.shape[2]
        nblk = (dim + LANES - 1) // LANES
        per = -(-nblk // parts)
        zero = np.zeros(1, dtype=u2.dtype)[0]
        one = np.ones(1, dtype=u2.dtype)[0]
        for task in prange(batch * nsrc * parts):
            b = task // (nsrc * parts)
            src = (task // parts) % nsrc
            part = task % parts
            blk0 = part * per
            nb = max(min(nblk, blk0 + per) - blk0, 0)
            for rev in range(ndir):  # a source's directions in one task: the second adds to its du
                k = ndir * src + rev
                for bi in range(nb):
                    for i in range(nstate):
                        for j in range(LANES):
                            hcs[task, bi, i, j] = zero
                            dAs[task, bi, i, j] = zero
                for c in range(nchunks - 1, -1, -1):
                    t0 = c * every
                    t1 = min(length, t0 + every)
                    n = t1 - t0
                    qlo = length - t1 if rev else t0  # the chunk's positions in its source: qlo .. qlo + n - 1
                    for bi in range(nb):
                        c0 = (blk0 + bi) * LANES
                        w = min(LANES, dim - c0)
                        for i in range(nstate):
                            for j in range(LANES):
                                At[task, i, j] = A[k * dim + c0 + j, i] if j < w else zero
                        for j in range(LANES):  # the chunk's rows of each channel, transposed into the lanes
                            if j < w:
                                cc = c0 + j
                                lanep[task, 0, j] = bias[k * dim + cc]
                                lanep[task, 1, j] = Dv[k * dim + cc]
                                for p in range(n):
                                    tt = n - 1 - p if rev else p
                                    dtl[task, tt, j] = delta[b, k, cc, qlo + p]
                                    gyl[task, tt, j] = gy2[b, src, cc, qlo + p]
                                    ul[task, tt, j] = u2[b, src, cc, qlo + p]
                                for i in range(nstate):
                                    xc[task, i, j] = ckpt[b, k * dim + cc, c, i]
                            else:  # padding lanes: zero input, gradient and state contribute nothing
                                lanep[task, 0, j] = zero
                                lanep[task, 1, j] = zero
                                for tt in range(n):
                                    dtl[task, tt, j] = zero
                                    gyl[task, tt, j] = zero
                                    ul[task, tt, j] = zero
                                for i in range(nstate):
                                    xc[task, i, j] = zero
                        if softplus:  # dt, dt u and the slope of softplus, vectorised over the lanes
                            for tt in range(n):
                                for j in range(LANES):
                                    v = dtl[task, tt, j] + lanep[task, 0, j]
                                    e = _exp(-abs(v))  # sigmoid from the same exp as softplus
                                    dtv = _softplus(v)
                                    dtl[task, tt, j] = dtv
                                    dul[task, tt, j] = dtv * ul[task, tt, j]
                                    spl[task, tt, j] = (one if v >= zero else e) / (one + e)
                        else:
                            for tt in range(n):
                                for j in range(LANES):
                                    dtv = dtl[task, tt, j] + lanep[task, 0, j]
                                    dtl[task, tt, j] = dtv
                                    dul[task, tt, j] = dtv * ul[task, tt, j]
                                    spl[task, tt, j] = one
                        for tt in range(n):  # recompute the chunk's states from its checkpoint, and dC
                            q = qlo + n - 1 - tt if rev else qlo + tt
                            for i in range(nstate):
                                bq = Bt[b, k, q, i]
                                s_c = zero
                                for j in range(LANES):
                                    a = _exp(dtl[task, tt, j] * At[task, i, j])
                                    ab[task, tt, i, j] = a
                                    xv = xc[task, i, j]
                                    xp[task, tt, i, j] = xv
                                    xv = a * xv + dul[task, tt, j] * bq
                                    xc[task, i, j] = xv
                                    s_c += gyl[task, tt, j] * xv
                                # the first block assigns (no zeroing pass), the others add
                                dCs[task, tt, i] = s_c + (dCs[task, tt, i] if bi > 0 else zero)
                        for tt in range(n - 1, -1, -1):  # the adjoint recurrence, backwards in time
                            q = qlo + n - 1 - tt if rev else qlo + tt
                            for j in range(LANES):
                                sal[task, tt, j] = zero
                                sbl[task, tt, j] = zero
                            for i in range(nstate):
                                bq = Bt[b, k, q, i]
                                cq = Ct[b, k, q, i]
                                s_b = zero
                                for j in range(LANES):
                                    h = gyl[task, tt, j] * cq + hcs[task, bi, i, j]
                                    s_b += h * dul[task, tt, j]
                                    sbl[task, tt, j] += h * bq
                                    a = ab[task, tt, i, j]
                                    ha = h * xp[task, tt, i, j] * a
                                    sal[task, tt, j] += ha * At[task, i, j]
                                    dAs[task, bi, i, j] += ha * dtl[task, tt, j]
                                    hcs[task, bi, i, j] = a * h
                                dBs[task, tt, i] = s_b + (dBs[task, tt, i] if bi > 0 else zero)
                        for tt in range(n):  # d delta and this direction's du, then out of the lanes
                            for j in range(LANES):
                                s_b = sbl[task, tt, j]
                                g = gyl[task, tt, j]
                                sal[task, tt, j] = (sal[task, tt, j] + s_b * ul[task, tt, j]) * spl[task, tt, j]
                                sbl[task, tt, j] = dtl[task, tt, j] * s_b + lanep[task, 1, j] * g
                        for j in range(w):
                            cc = c0 + j
                            s_bias = zero
                            s_d = zero
                            for p in range(n):
                                tt = n - 1 - p if rev else p
                                ddelta[b, k, cc, qlo + p] = sal[task, tt, j]
                                if rev:
                                    du2[b, src, cc, qlo + p] += sbl[task, tt, j]
                                else:
                                    du2[b, src, cc, qlo + p] = sbl[task, tt, j]
                                s_bias += sal[task, tt, j]
                                s_d += gyl[task, tt, j] * ul[task, tt, j]
                            dbias_part[b, k * dim + cc] += s_bias
                            dD_part[b, k * dim + cc] += s_d
                    for tt in range(n):  # this task's dB, dC rows of the chunk
                        q = qlo + n - 1 - tt if rev else qlo + tt
                        for i in range(nstate):
                            dC_part[b, k, part, i, q] = dCs[task, tt, i] if nb > 0 else zero
                            dB_part[b, k, part, i, q] = dBs[task, tt, i] if nb > 0 else zero
                for bi in range(nb):
                    c0 = (blk0 + bi) * LANES
                    for j in range(min(LANES, dim - c0)):
                        for i in range(nstate):
                            dA_part[b, k * dim + c0 + j, i] = dAs[task, bi, i, j]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _sync_threads() -> None:
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def forward(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    delta_bias: torch.Tensor,
    softplus: bool,
    save: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """y (b, d, l) and the checkpointed states (b, d, ceil(l / CHECKPOINT), n) (a (1, 1, 1, 1)
    placeholder when not ``save``). u, delta: (b, d, l); A: (d, n); B, C: (b, g, n, l); D, delta_bias: (d,).
    Without ``save`` B and C are read in place as strided (b, g, l, n) views (no transposed copies)."""
    batch, dim, length = u.shape
    un = _np(u)
    if save:
        Bv, Cv = _np(B.transpose(2, 3)), _np(C.transpose(2, 3))
        ckpt = np.empty((batch, dim, -(-length // CHECKPOINT), A.shape[1]), dtype=un.dtype)
    else:
        Bv = B.detach().contiguous().numpy().transpose(0, 1, 3, 2)
        Cv = C.detach().contiguous().numpy().transpose(0, 1, 3, 2)
        ckpt = np.empty((1, 1, 1, 1), dtype=un.dtype)
    y = np.empty_like(un)
    _sync_threads()
    _forward_lanes_kernel(
        un, _np(delta), _np(A), Bv, Cv, _np(D), _np(delta_bias), bool(softplus), y, ckpt, CHECKPOINT, bool(save)
    )
    return torch.from_numpy(y), torch.from_numpy(ckpt)


def backward_lanes(
    u2: np.ndarray,
    delta: np.ndarray,
    A: np.ndarray,
    Bt: np.ndarray,
    Ct: np.ndarray,
    D: np.ndarray,
    delta_bias: np.ndarray,
    softplus: bool,
    gy2: np.ndarray,
    ckpt: np.ndarray,
    ndir: int,
    parts: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Runs :func:`_backward_lanes_kernel` (see it for the layouts; contiguous arrays, Bt, Ct (b, K, l, n))
    and returns the gradients (du2 (b, S, c, l), ddelta (b, K, c, l), dA (K c, n), dB, dC (b, K, n, l),
    dD, ddelta_bias (K c,)). ``parts``: tasks per (batch, source), each with a share of the channel
    blocks (default: enough tasks for two per thread)."""
    batch, nsrc, dim, length = u2.shape
    ndirs, nstate, dt = delta.shape[1], A.shape[1], u2.dtype
    _sync_threads()
    threads = numba.get_num_threads()
    nblk = -(-dim // LANES)
    if parts is None:
        parts = max(1, min(nblk, -(-2 * threads // (batch * nsrc)))) if batch * nsrc < 2 * threads else 1
    elif parts < 1:
        raise ValueError(f"selective scan backward: parts must be >= 1, got {parts}")
    tasks, blocks = batch * nsrc * parts, -(-nblk // parts)
    du2 = np.empty_like(u2)
    ddelta = np.empty_like(delta)
    dA_part = np.empty((batch, ndirs * dim, nstate), dtype=dt)
    dB_part = np.empty((batch, ndirs, parts, nstate, length), dtype=dt)
    dC_part = np.empty_like(dB_part)
    dD_part = np.zeros((batch, ndirs * dim), dtype=dt)
    dbias_part = np.zeros_like(dD_part)
    _backward_lanes_kernel(
        u2,
        delta,
        A,
        Bt,
        Ct,
        D,
        delta_bias,
        bool(softplus),
        gy2,
        ckpt,
        CHECKPOINT,
        ndir,
        parts,
        du2,
        ddelta,
        dA_part,
        dB_part,
        dC_part,
        dD_part,
        dbias_part,
        np.empty((tasks, CHECKPOINT, nstate, LANES), dtype=dt),
        np.empty((tasks, CHECKPOINT, nstate, LANES), dtype=dt),
        np.empty((tasks, nstate, LANES), dtype=dt),
        np.empty((tasks, CHECKPOINT, nstate), dtype=dt),
        np.empty((tasks, CHECKPOINT, nstate), dtype=dt),
        np.empty((tasks, blocks, nstate, LANES), dtype=dt),
        np.empty((tasks, blocks, nstate, LANES), dtype=dt),
        np.empty((tasks, nstate, LANES), dtype=dt),
        np.empty((tasks, 2, LANES), dtype=dt),
        *(np.empty((tasks, CHECKPOINT, LANES), dtype=dt) for _ in range(7)),
    )
    dB = torch.from_numpy(dB_part.sum(2) if parts > 1 else np.ascontiguousarray(dB_part[:, :, 0]))
    dC = torch.from_numpy(dC_part.sum(2) if parts > 1 else np.ascontiguousarray(dC_part[:, :, 0]))
    dD, dbias = torch.from_numpy(dD_part).sum(0), torch.from_numpy(dbias_part).sum(0)
    return torch.from_numpy(du2), torch.from_numpy(ddelta), torch.from_numpy(dA_part).sum(0), dB, dC, dD, dbias


def backward(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    delta_bias: torch.Tensor,
    softplus: bool,
    gy: torch.Tensor,
    ckpt: torch.Tensor,
    parts: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Gradients of (u, delta, A, B, C, D, delta_bias) from the states saved by :func:`forward`: the
    lanes backward with each group of B/C as one source scanned in one direction."""
    batch, dim, length = u.shape
    groups = B.shape[1]
    grouped = (batch, groups, dim // groups, length)  # channel g rep + c of group g
    du, ddelta, dA, dB, dC, dD, dbias = backward_lanes(
        _np(u).reshape(grouped),
        _np(delta).reshape(grouped),
        _np(A),
        _np(B.transpose(2, 3)),
        _np(C.transpose(2, 3)),
        _np(D),
        _np(delta_bias),
        softplus,
        _np(gy).reshape(grouped),
        _np(ckpt),
        1,
        parts,
    )
    return du.view(batch, dim, length), ddelta.view(batch, dim, length), dA, dB, dC, dD, dbias
