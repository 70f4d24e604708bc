"""The fused 4-direction cross-scan on the CPU: numba kernels, forward and backward.

VMamba's SS2D scans a (B, C, H, W) map in four orders (row-major, column-major and both reversed)
and sums the four outputs back in row-major order. Unfused, that is two copies of the map, a
concatenation and flips on the way in, and flips, transposes and three additions on the way out
(``handssca.model.ssca.cross_scan_unfused``). Here the kernels read two sources, the map in
row-major order and in column-major order (u2 (B, 2, C, L)), each forwards and backwards, and add
the outputs of the two directions of a source into that source's output (y2 (B, 2, C, L)); the
caller adds the column-major one back transposed. Direction k' = 2 s + r reads source s (0: rows,
1: columns), reversed when r = 1; its delta (B, 4, C, L) and B, C (B, 4, N, L) are the map's
projections at that source's positions (a projection is per position, so it commutes with the
reordering), and its parameters sit at index k' C + c (A (4C, N), D (4C), delta_bias (4C)).
Every read is contiguous (forwards or backwards); no flipped or concatenated copies are made.

Both kernels run LANES channels as SIMD lanes and a source's two directions one after the other
in the same task (so that each output row has one writer): the forward as ``cpu_numba``'s forward
with that indexing; the backward per (batch, source, part of the channel blocks), recomputing each
chunk's states from the forward's checkpoints, with its scratch buffers passed in by the caller (see
its docstring: that is what lets LLVM vectorise it). Compiled on first use, never at import.
"""

from __future__ import annotations

import numpy as np
import torch

from handssca.ops.selective_scan import cpu_numba
from handssca.ops.selective_scan.cpu_numba import CHECKPOINT, LANES, numba

NDIR = 4
#: parameter order of the kernels (rows, rows reversed, columns, columns reversed) as indices into
#: VMamba's order (rows, columns, rows reversed, columns reversed)
KERNEL_ORDER = (0, 2, 1, 3)


# Alike by design: the forward kernel below is cpu_numba's forward kernel with the source/direction
# indexing; a shared kernel with an index indirection measured 1.6-1.8x slower.
if numba is not None:
    from numba import njit, prange

    from handssca.ops.selective_scan.cpu_numba import _exp, _softplus

    @njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _cross_forward_kernel(u2, delta, A, Bt, Ct, Dv, bias, softplus, y2, ckpt, every, save):  # pragma: no cover
        """u2 (b, 2, c, l); delta (b, 4, c, l); Bt, Ct (b, 4, l, n); A (4c, n); Dv, bias (4c,);
        y2 (b, 2, c, l) is overwritten: per source, the sum of its two directions."""
        batch, _, dim, length = u2.shape
        nstate = A.shape[1]
        nblk = (dim + LANES - 1) // LANES
        zero = np.zeros(1, dtype=u2.dtype)[0]
        for task in prange(batch * 2 * nblk):
            b = task // (2 * nblk)
            src = (task // nblk) % 2
            c0 = (task % nblk) * LANES
            w = min(LANES, dim - c0)
            x = np.zeros((nstate, LANES), dtype=u2.dtype)
            At = np.zeros((nstate, LANES), dtype=u2.dtype)
            dtb = np.zeros((every, LANES), dtype=u2.dtype)
            dub = np.zeros((every, LANES), dtype=u2.dtype)
            yb = np.zeros((every, LANES), dtype=u2.dtype)
            row = np.zeros(every, dtype=u2.dtype)
            urb = np.zeros(every, dtype=u2.dtype)
            for j in range(w):
                yrow = y2[b, src, c0 + j]
                for t in range(length):
                    yrow[t] = zero
            for rev in range(2):
                k = 2 * src + rev
                for i in range(nstate):
                    for j in range(w):
                        At[i, j] = A[k * dim + c0 + j, i]
                        x[i, j] = zero
                for t0 in range(0, length, every):
                    t1 = min(length, t0 + every)
                    n = t1 - t0
                    if save:
                        for j in range(w):
                            for i in range(nstate):
                                ckpt[b, k * dim + c0 + j, t0 // every, i] = x[i, j]
                    for j in range(w):
                        bj = bias[k * dim + c0 + j]
                        drow = delta[b, k, c0 + j]
                        urow = u2[b, src, c0 + j]
                        if rev:
                            for tt in range(n):
                                q = length - 1 - t0 - tt
                                row[tt] = drow[q] + bj
                                urb[tt] = urow[q]
                        else:
                            for tt in range(n):
                                row[tt] = drow[t0 + tt] + bj
                                urb[tt] = urow[t0 + tt]
                        if softplus:  # vectorised over the chunk
                            for tt in range(n):
                                row[tt] = _softplus(row[tt])
                        for tt in range(n):
                            dtb[tt, j] = row[tt]
                            dub[tt, j] = row[tt] * urb[tt]
                    for t in range(t0, t1):
                        tt = t - t0
                        q = length - 1 - t if rev else t
                        for j in range(LANES):
                            yb[tt, j] = zero
                        for i in range(nstate):
                            bi = Bt[b, k, q, i]
                            ci = Ct[b, k, q, i]
                            for j in range(LANES):
                                xv = _exp(dtb[tt, j] * At[i, j]) * x[i, j] + dub[tt, j] * bi
                                x[i, j] = xv
                                yb[tt, j] += xv * ci
                    for j in range(w):
                        dj = Dv[k * dim + c0 + j]
                        urow = u2[b, src, c0 + j]
                        yrow = y2[b, src, c0 + j]
                        for tt in range(n):
                            q = length - 1 - t0 - tt if rev else t0 + tt
                            yrow[q] += yb[tt, j] + dj * urow[q]

    @njit(parallel=True, fastmath=True, cache=True, nogil=True, error_model="numpy")
    def _cross_backward_kernel(
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
        """Tasks (batch, source, part of the channel blocks), each running the source's two directions,
        LANES channels as SIMD lanes as in the forward. gy2 (b, 2, c, l): the output gradient at each
        source's positions; du2 (b, 2, c, l): du at each source's positions; ddelta
        (b, 4, c, l); dA_part (b, 4c, n); dB_part, dC_part (b, 4, parts, n, l): each column written once;
        dD_part, dbias_part (b, 4c), zeroed by the caller.

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
        batch, _, dim, length = u2.shape
        nstate = A.shape[1]
        nchunks = ckpt.shape[2]
        nblk = (dim + LANES - 1) // LANES
        per = -(-nblk // parts)
        zero = np.zeros(1, dtype=u2.dtype)[0]
        one = np.ones(1, dtype=u2.dtype)[0]
        for task in prange(batch * 2 * parts):
            b = task // (2 * parts)
            src = (task // parts) % 2
            part = task % parts
            blk0 = part * per
            nb = max(min(nblk, blk0 + per) - blk0, 0)
            for rev in range(2):  # a source's two directions in one task: the second adds to its du
                k = 2 * src + rev
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


_np = cpu_numba._np


def _bc_view(t: torch.Tensor) -> np.ndarray:
    """B or C (b, 4, n, l) as a (b, 4, l, n) array view, without a copy (the inference path). The
    16 values of a step then lie L floats apart, in one L1 cache set when L is a multiple of 1024:
    training makes contiguous copies (:func:`_bc_rows`), which the backward, reading them many
    times, needs."""
    return t.detach().numpy().transpose(0, 1, 3, 2)


def _bc_rows(t: torch.Tensor) -> np.ndarray:
    """B or C (b, 4, n, l) as a contiguous (b, 4, l, n) array (one transposed copy)."""
    return _np(t.transpose(2, 3))


def forward(u2, delta, A, B, C, D, delta_bias, softplus: bool, save: bool):
    """y2 (b, 2, c, l) and the checkpoints (b, 4c, ceil(l / CHECKPOINT), n) (or a placeholder).
    u2 (b, 2, c, l); delta (b, 4, c, l); A (4c, n); B, C (b, 4, n, l); D, delta_bias (4c,); kernel order."""
    batch, _, dim, length = u2.shape
    un = _np(u2)
    y2 = np.empty_like(un)
    shape = (batch, NDIR * dim, -(-length // CHECKPOINT), A.shape[1]) if save else (1, 1, 1, 1)
    ckpt = np.empty(shape, dtype=un.dtype)
    Bv, Cv = (_bc_rows(B), _bc_rows(C)) if save else (_bc_view(B), _bc_view(C))
    cpu_numba._sync_threads()
    _cross_forward_kernel(
        un,
        _np(delta),
        _np(A),
        Bv,
        Cv,
        _np(D),
        _np(delta_bias),
        bool(softplus),
        y2,
        ckpt,
        CHECKPOINT,
        bool(save),
    )
    return torch.from_numpy(y2), torch.from_numpy(ckpt)


def backward(u2, delta, A, B, C, D, delta_bias, softplus: bool, gy2, ckpt, parts: int | None = None):
    """Gradients of (u2, delta, A, B, C, D, delta_bias) from :func:`forward`'s checkpoints. ``parts``:
    tasks per (batch, source), each with a share of the channel blocks (default: enough tasks for
    two per thread)."""
    batch, _, dim, length = u2.shape
    nstate = A.shape[1]
    cpu_numba._sync_threads()
    threads = numba.get_num_threads()
    nblk = -(-dim // LANES)
    if parts is None:
        parts = max(1, min(nblk, -(-2 * threads // (batch * 2)))) if batch * 2 < 2 * threads else 1
    elif parts < 1:
        raise ValueError(f"cross-scan backward: parts must be >= 1, got {parts}")
    tasks, blocks = batch * 2 * parts, -(-nblk // parts)
    un, gyn = _np(u2), _np(gy2)
    dt = un.dtype
    du2 = np.empty_like(un)
    ddelta = np.empty((batch, NDIR, dim, length), dtype=dt)
    dA_part = np.empty((batch, NDIR * dim, nstate), dtype=dt)
    dB_part = np.empty((batch, NDIR, parts, nstate, length), dtype=dt)
    dC_part = np.empty_like(dB_part)
    dD_part = np.zeros((batch, NDIR * dim), dtype=dt)
    dbias_part = np.zeros_like(dD_part)
    _cross_backward_kernel(
        un,
        _np(delta),
        _np(A),
        _bc_rows(B),
        _bc_rows(C),
        _np(D),
        _np(delta_bias),
        bool(softplus),
        gyn,
        _np(ckpt),
        CHECKPOINT,
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
    du = torch.from_numpy(du2)
    dD, dbias = torch.from_numpy(dD_part).sum(0), torch.from_numpy(dbias_part).sum(0)
    return du, torch.from_numpy(ddelta), torch.from_numpy(dA_part).sum(0), dB, dC, dD, dbias
