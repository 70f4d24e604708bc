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

The kernels are the ones of ``cpu_numba`` with that indexing: the forward runs LANES channels as
SIMD lanes and a source's two directions one after the other in the same task (so that each output
row has one writer); the backward runs (batch, direction, part of the channels) tasks and recomputes
each chunk's states from the forward's checkpoints. Compiled on first use, never at import.
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


# Alike by design: the two kernels below are cpu_numba's forward and backward kernels with the
# source/direction indexing; a shared kernel with an index indirection measured 1.6-1.8x slower.
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
        u2, delta, A, Bt, Ct, Dv, bias, softplus, gy2, ckpt, every, parts, du4, ddelta, dA_part, dB_part, dC_part
    ):  # pragma: no cover - compiled
        """Tasks (batch, direction, part of the channels). gy2 (b, 2, c, l): the output gradient
        at each source's positions; du4 (b, 4, c, l): each direction's part of du at its source's
        positions (summed by the caller); ddelta (b, 4, c, l); dA_part (b, 4c, n); dB_part,
        dC_part (b, 4, parts, l, n)."""
        batch, _, dim, length = u2.shape
        nstate = A.shape[1]
        nchunks = ckpt.shape[2]
        per = -(-dim // parts)
        zero = np.zeros(1, dtype=u2.dtype)[0]
        one = np.ones(1, dtype=u2.dtype)[0]
        for task in prange(batch * NDIR * parts):
            b = task // (NDIR * parts)
            k = (task // parts) % NDIR
            src = k // 2
            rev = k % 2
            part = task % parts
            abuf = np.empty((every, nstate), dtype=u2.dtype)
            xbuf = np.empty((every + 1, nstate), dtype=u2.dtype)
            dtc = np.empty(every, dtype=u2.dtype)
            slope = np.empty(every, dtype=u2.dtype)
            c_start = part * per
            c_end = min((part + 1) * per, dim)
            nd = max(c_end - c_start, 0)
            hc_all = np.zeros((nd, nstate), dtype=u2.dtype)
            dA_all = np.zeros((nd, nstate), dtype=u2.dtype)
            hc = np.empty(nstate, dtype=u2.dtype)
            dA_loc = np.empty(nstate, dtype=u2.dtype)
            for c in range(nchunks - 1, -1, -1):
                t0 = c * every
                t1 = min(length, t0 + every)
                for kk in range(nd):
                    cc = c_start + kk
                    d = k * dim + cc
                    bd = bias[d]
                    Dd = Dv[d]
                    for i in range(nstate):
                        hc[i] = hc_all[kk, i]
                        dA_loc[i] = dA_all[kk, i]
                    drow = delta[b, k, cc]
                    urow = u2[b, src, cc]
                    grow = gy2[b, src, cc]
                    if rev:
                        for j in range(t1 - t0):
                            dtc[j] = drow[length - 1 - t0 - j] + bd
                    else:
                        for j in range(t1 - t0):
                            dtc[j] = drow[t0 + j] + bd
                    if softplus:  # dt and its slope for the chunk, vectorised over t
                        for j in range(t1 - t0):
                            v = dtc[j]
                            e = _exp(-abs(v))  # sigmoid from the same exp as softplus
                            dtc[j] = _softplus(v)
                            slope[j] = (one if v >= zero else e) / (one + e)
                    else:
                        for j in range(t1 - t0):
                            slope[j] = one
                    for i in range(nstate):
                        xbuf[0, i] = ckpt[b, d, c, i]
                    for t in range(t0, t1):
                        j = t - t0
                        q = length - 1 - t if rev else t
                        dtv = dtc[j]
                        duv = dtv * urow[q]
                        for i in range(nstate):
                            a = _exp(dtv * A[d, i])
                            abuf[j, i] = a
                            xbuf[j + 1, i] = a * xbuf[j, i] + duv * Bt[b, k, q, i]
                    for t in range(t1 - 1, t0 - 1, -1):
                        j = t - t0
                        q = length - 1 - t if rev else t
                        g_y = grow[q]
                        dtv = dtc[j]
                        uv = urow[q]
                        duv = dtv * uv
                        s_b = zero
                        s_a = zero
                        for i in range(nstate):
                            h = g_y * Ct[b, k, q, i] + hc[i]
                            dC_part[b, k, part, q, i] += g_y * xbuf[j + 1, i]
                            dB_part[b, k, part, q, i] += h * duv
                            s_b += h * Bt[b, k, q, i]
                            ha = h * xbuf[j, i] * abuf[j, i]
                            s_a += ha * A[d, i]
                            dA_loc[i] += ha * dtv
                            hc[i] = abuf[j, i] * h
                        ddelta[b, k, cc, q] = (s_a + s_b * uv) * slope[j]
                        du4[b, k, cc, q] = dtv * s_b + Dd * g_y
                    for i in range(nstate):
                        hc_all[kk, i] = hc[i]
                        dA_all[kk, i] = dA_loc[i]
            for kk in range(nd):
                for i in range(nstate):
                    dA_part[b, k * dim + c_start + kk, i] = dA_all[kk, i]


_np = cpu_numba._np


def forward(u2, delta, A, B, C, D, delta_bias, softplus: bool, save: bool):
    """y2 (b, 2, c, l) and the checkpoints (b, 4c, ceil(l / CHECKPOINT), n) (or a placeholder).
    u2 (b, 2, c, l); delta (b, 4, c, l); A (4c, n); B, C (b, 4, n, l); D, delta_bias (4c,); kernel order."""
    batch, _, dim, length = u2.shape
    un = _np(u2)
    y2 = np.empty_like(un)
    shape = (batch, NDIR * dim, -(-length // CHECKPOINT), A.shape[1]) if save else (1, 1, 1, 1)
    ckpt = np.empty(shape, dtype=un.dtype)
    if save:  # the backward reads them too: one contiguous (b, 4, l, n) copy
        Bv, Cv = _np(B.transpose(2, 3)), _np(C.transpose(2, 3))
    else:  # inference: read in place as strided (b, 4, l, n) views
        Bv, Cv = B.detach().numpy().transpose(0, 1, 3, 2), C.detach().numpy().transpose(0, 1, 3, 2)
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


def backward(u2, delta, A, B, C, D, delta_bias, softplus: bool, gy2, ckpt):
    """Gradients of (u2, delta, A, B, C, D, delta_bias) from :func:`forward`'s checkpoints."""
    batch, _, dim, length = u2.shape
    nstate = A.shape[1]
    cpu_numba._sync_threads()
    threads = numba.get_num_threads()
    parts = max(1, min(dim, -(-2 * threads // (batch * NDIR)))) if batch * NDIR < 2 * threads else 1
    un, gyn = _np(u2), _np(gy2)
    du4 = np.empty((batch, NDIR, dim, length), dtype=un.dtype)
    ddelta = np.empty_like(du4)
    dA_part = np.empty((batch, NDIR * dim, nstate), dtype=un.dtype)
    dB_part = np.zeros((batch, NDIR, parts, length, nstate), dtype=un.dtype)
    dC_part = np.zeros_like(dB_part)
    _cross_backward_kernel(
        un,
        _np(delta),
        _np(A),
        _np(B.transpose(2, 3)),
        _np(C.transpose(2, 3)),
        _np(D),
        _np(delta_bias),
        bool(softplus),
        gyn,
        _np(ckpt),
        CHECKPOINT,
        parts,
        du4,
        ddelta,
        dA_part,
        dB_part,
        dC_part,
    )
    dB = torch.from_numpy(dB_part.sum(2) if parts > 1 else dB_part[:, :, 0]).transpose(2, 3).contiguous()
    dC = torch.from_numpy(dC_part.sum(2) if parts > 1 else dC_part[:, :, 0]).transpose(2, 3).contiguous()
    ddelta_t = torch.from_numpy(ddelta)
    per_source = torch.einsum("bscl,bscl->sc", torch.from_numpy(gyn), torch.from_numpy(un))
    dD = per_source.repeat_interleave(2, dim=0).reshape(-1)  # directions 2s and 2s + 1 read source s
    dbias = ddelta_t.sum((0, 3)).reshape(-1)
    du = torch.from_numpy(du4).view(batch, 2, 2, dim, length).sum(2)
    return du, ddelta_t, torch.from_numpy(dA_part).sum(0), dB, dC, dD, dbias
