"""A chunked selective scan in plain PyTorch: any device, autograd by PyTorch, exportable to ONNX.

The sequence is cut into chunks of length T. Inside every chunk the recurrence
``x_t = a_t x_{t-1} + b_t`` runs from a zero state for all chunks at once (T steps), then the
states entering each chunk are carried across chunks (L/T steps), and each chunk's states are
corrected by ``exp(cumsum(dt * A))`` times its incoming state. Every exponent is ``dt * A`` or a
partial sum of them, never a difference that could overflow, so the scan is as stable as the loop
for A < 0. Work is about three times the element count and Python steps are ~2 sqrt(L).
"""

from __future__ import annotations

import math

import torch


def scan_core_torch(
    u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, chunk: int | None = None
) -> torch.Tensor:
    """y_t = <x_t, C_t> for x_t = exp(dt_t A) x_{t-1} + dt_t u_t B_t; dt already biased/softplussed.

    u, dt: (b, d, l); A: (d, n); B, C: (b, g, n, l) with d divisible by g. Returns (b, d, l).
    """
    batch, dim, length = u.shape
    groups, nstate = B.shape[1], B.shape[2]
    if chunk is None:
        chunk = max(1, int(math.sqrt(length)))
    nchunks = (length + chunk - 1) // chunk  # not -(-a // b): traced into ONNX, integer division truncates
    pad = nchunks * chunk - length
    rep = dim // groups
    # (b, g, rep, l, n) views so that B/C broadcast over the channels of their group
    Bg = B.transpose(2, 3).unsqueeze(2)
    Cg = C.transpose(2, 3).unsqueeze(2)
    dt5 = dt.view(batch, groups, rep, length, 1)
    u5 = u.view(batch, groups, rep, length, 1)
    A5 = A.view(groups, rep, 1, nstate)
    log_a = dt5 * A5  # (b, g, rep, l, n)
    b_in = (dt5 * u5) * Bg
    if pad:
        log_a = torch.nn.functional.pad(log_a, (0, 0, 0, pad))
        b_in = torch.nn.functional.pad(b_in, (0, 0, 0, pad))
    shape = (batch, groups, rep, nchunks, chunk, nstate)
    log_a = log_a.reshape(shape)
    b_in = b_in.reshape(shape)
    # step along the chunk position with unbind (one view per step): indexing inside the loop would
    # make autograd's backward allocate a full-size gradient per step
    a_steps = torch.exp(log_a).unbind(4)
    b_steps = b_in.unbind(4)
    h = torch.zeros_like(b_steps[0])
    hs = []
    for a_j, b_j in zip(a_steps, b_steps):
        h = a_j * h + b_j
        hs.append(h)
    H = torch.stack(hs, dim=4)  # states inside each chunk from a zero start
    decay = torch.exp(torch.cumsum(log_a, dim=4))  # product of a from the chunk start
    carry = torch.zeros_like(h[:, :, :, 0])
    carries = []
    for d_m, h_m in zip(decay[:, :, :, :, -1].unbind(3), hs[-1].unbind(3)):
        carries.append(carry)
        carry = d_m * carry + h_m
    X = H + decay * torch.stack(carries, dim=3).unsqueeze(4)
    X = X.reshape(batch, groups, rep, nchunks * chunk, nstate)[:, :, :, :length]
    y = (X * Cg).sum(-1)
    return y.reshape(batch, dim, length)


#: Per-step floor of log(decay) in :func:`scan_core_chunked`, by dtype: a decay below exp(-floor)
#: counts as exp(-floor), so the exponents inside a chunk of 8 stay within +-4 x floor. float32 (the
#: exported model): -12, exp(48) = 7e20 leaves room for inputs up to ~1e17 (at -21 the bound was
#: exp(84) = 3e36 and |dt u B| over ~100 overflowed to inf/NaN); what the floor keeps of a state is at
#: most 6.1e-6 of it per step of strong decay. float64: -21 (exp(84) is far inside its range).
LOG_DECAY_FLOOR = 21.0
LOG_DECAY_FLOOR_FLOAT32 = 12.0
#: Chunk length of :func:`scan_core_chunked` (8 x LOG_DECAY_FLOOR / 2 = 84).
EXPORT_CHUNK = 8


def _floor(dtype: torch.dtype) -> float:
    return LOG_DECAY_FLOOR if dtype == torch.float64 else LOG_DECAY_FLOOR_FLOAT32


def _decay_scan(log_a: torch.Tensor, inc: torch.Tensor) -> torch.Tensor:
    """States h_m = exp(log_a_m) h_{m-1} + inc_m along axis -2 from h = 0; log_a <= 0, (..., M, n).

    Chunks of EXPORT_CHUNK in the cumsum form (recursively for the chunks' own carries).
    """
    *lead, length, nstate = log_a.shape
    if length == 1:
        return inc
    t = EXPORT_CHUNK
    nchunks = (length + t - 1) // t
    pad = nchunks * t - length
    log_a = log_a.clamp(min=-_floor(log_a.dtype))
    if pad:
        log_a = torch.nn.functional.pad(log_a, (0, 0, 0, pad))
        inc = torch.nn.functional.pad(inc, (0, 0, 0, pad))
    S = torch.cumsum(log_a.reshape(*lead, nchunks, t, nstate), -2)
    E = torch.exp(S - S[..., t // 2 - 1 : t // 2, :])
    h = E * torch.cumsum(inc.reshape(*lead, nchunks, t, nstate) / E, -2)
    if nchunks > 1:
        carry = _decay_scan(S[..., -1, :], h[..., -1, :])
        carry = torch.nn.functional.pad(carry[..., :-1, :], (0, 0, 1, 0))  # the state entering each chunk
        h = h + torch.exp(S) * carry.unsqueeze(-2)
    return h.reshape(*lead, nchunks * t, nstate)[..., :length, :]


def scan_core_chunked(
    u: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor
) -> torch.Tensor:
    """:func:`scan_core_torch` in a few large tensor operations: the form for ONNX export.

    Inside a chunk of T = EXPORT_CHUNK steps with S_t = sum of log decays (dt A) from the chunk's
    start, x_t = exp(S_t - S_r) * cumsum_s(exp(S_r - S_s) dt_s u_s B_s) + exp(S_t) x_0, where r is
    the chunk's middle step, so that both exponentials stay within exp(+-84) (each step's log decay
    is floored at -LOG_DECAY_FLOOR). y_t = sum_n C_t x_t. The states entering the chunks come
    from the same form one level up (:func:`_decay_scan` on (b, d, L / T, n)). About 12 elementwise
    operations over (b, d, L, n) and no loop over L: about 240-290 ONNX nodes per scan instead of thousands.
    u, dt: (b, d, l); A: (d, n); B, C: (b, g, n, l). Returns (b, d, l).
    """
    batch, dim, length = u.shape
    groups, nstate = B.shape[1], B.shape[2]
    rep = dim // groups
    t = EXPORT_CHUNK
    nchunks = (length + t - 1) // t  # not -(-a // b): traced into ONNX, integer division truncates
    pad = nchunks * t - length
    Bt, Ct = B.transpose(2, 3), C.transpose(2, 3)
    if pad:  # padded steps: dt = 0 (no decay, no input) after the end, so they change nothing before it
        u, dt = torch.nn.functional.pad(u, (0, pad)), torch.nn.functional.pad(dt, (0, pad))
        Bt, Ct = torch.nn.functional.pad(Bt, (0, 0, 0, pad)), torch.nn.functional.pad(Ct, (0, 0, 0, pad))
    shape = (batch, groups, rep, nchunks, t, 1)
    A6 = A.view(1, groups, rep, 1, 1, nstate)
    log_a = dt.reshape(shape) * A6
    log_a = log_a.clamp(min=-_floor(log_a.dtype))  # (b, g, rep, M, T, n)
    S = torch.cumsum(log_a, 4)
    S_ref = S[:, :, :, :, t // 2 - 1 : t // 2]
    E = torch.exp(S - S_ref)
    Bg = Bt.reshape(batch, groups, 1, nchunks, t, nstate)
    Cg = Ct.reshape(batch, groups, 1, nchunks, t, nstate)
    R = torch.cumsum(Bg * (dt * u).reshape(shape) / E, 4)
    if nchunks > 1:
        ends = E[:, :, :, :, -1] * R[:, :, :, :, -1]  # each chunk's end state from a zero start
        carry = _decay_scan(S[:, :, :, :, -1], ends)
        carry = torch.nn.functional.pad(carry[:, :, :, :-1], (0, 0, 1, 0))
        R = R + torch.exp(S_ref) * carry.unsqueeze(4)
    y = (R * (E * Cg)).sum(-1)
    return y.reshape(batch, dim, nchunks * t)[..., :length]
