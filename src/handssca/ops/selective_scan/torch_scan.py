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
