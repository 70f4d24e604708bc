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

Forward and backward run LANES channels as SIMD lanes and a source's two directions one after the
other in the same task (so that each output row has one writer): the forward here, as
``cpu_numba``'s forward with that indexing; the backward is ``cpu_numba``'s lanes kernel with two
directions per source, recomputing each chunk's states from the forward's checkpoints (its
docstring says why its scratch buffers come from the caller). Compiled on first use, never at import.
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
    """Gradients of (u2, delta, A, B, C, D, delta_bias) from :func:`forward`'s checkpoints: the lanes
    backward of ``cpu_numba`` with two directions per source. ``parts``: see ``cpu_numba.backward_lanes``."""
    args = (_np(u2), _np(delta), _np(A), _bc_rows(B), _bc_rows(C), _np(D), _np(delta_bias))
    return cpu_numba.backward_lanes(*args, softplus, _np(gy2), _np(ckpt), 2, parts)
