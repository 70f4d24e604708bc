"""The plain loop over L: the test oracle for every other backend.

Written directly from the semantics (spec: mamba_ssm ``selective_scan_ref``) so that autograd's
backward stays linear in L: each step reads one column of the inputs, and the state is a (B, D, N)
tensor carried through a Python loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """y (b, d, l) of the selective scan; arguments as :func:`handssca.ops.selective_scan`.

    Computes in the dtype of ``u`` (callers cast); B and C may be (b, n, l) or grouped (b, g, n, l).
    """
    batch, dim, _ = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    groups = B.shape[1]
    B = B.repeat_interleave(dim // groups, dim=1)  # (b, d, n, l)
    C = C.repeat_interleave(dim // groups, dim=1)
    # unbind once: indexing the full tensors inside the loop would make the backward O(L^2)
    steps = zip(delta.unsqueeze(-1).unbind(2), u.unsqueeze(-1).unbind(2), B.unbind(-1), C.unbind(-1))
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for dt, u_t, B_t, C_t in steps:  # dt, u_t: (b, d, 1); B_t, C_t: (b, d, n)
        x = torch.exp(dt * A) * x + dt * B_t * u_t
        ys.append((x * C_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[None, :, None] * u
    return y
