"""Rotation conversions used by the hand layer and the model (batched, differentiable)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. aa: (..., 3) axis * angle (radians) -> (..., 3, 3).

    Exact (no epsilon bias) and differentiable at zero: sin(t)/t and (1-cos t)/t^2 switch to their
    Taylor series for small angles.
    """
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / safe)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), robust near 0 and near pi.

    Goes through a unit quaternion chosen by the largest diagonal element (Shepperd's method), then
    ``2 atan2(|v|, w) v / |v|`` with a Taylor branch at small angles.
    """
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack(
        [
            torch.stack(
                [1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + 2 * m[..., 0, 0] - tr,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 + 2 * m[..., 1, 1] - tr,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 + 2 * m[..., 2, 2] - tr,
                ],
                -1,
            ),
        ],
        -2,
    )  # (..., 4, 4): row k is 4 q_k q, unnormalised
    choice = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1).argmax(-1)
    q = torch.gather(cands, -2, choice[..., None, None].expand(*choice.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
    w, v = q[..., :1], q[..., 1:]
    n2 = (v * v).sum(-1, keepdim=True)
    small = n2 < 1e-12
    n = torch.where(small, torch.ones_like(n2), n2).sqrt()
    # angle = 2 atan2(n, w) = 4 atan(n / (1 + w)) for a unit quaternion with w >= 0 (ONNX has no atan2)
    scale = torch.where(
        small, 2 / w.clamp_min(1e-12) * (1 - n2 / (3 * w * w).clamp_min(1e-12)), 4 * torch.atan(n / (1 + w)) / n
    )
    return v * scale


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotation (..., 6) -> (..., 3, 3) by Gram-Schmidt; the two 3-vectors become the first two columns."""
    a1, a2 = x[..., :3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.stack(
        [
            b1[..., 1] * b2[..., 2] - b1[..., 2] * b2[..., 1],
            b1[..., 2] * b2[..., 0] - b1[..., 0] * b2[..., 2],
            b1[..., 0] * b2[..., 1] - b1[..., 1] * b2[..., 0],
        ],
        dim=-1,
    )  # cross product, ONNX-friendly
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, the inverse of :func:`rot6d_to_matrix`."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)
