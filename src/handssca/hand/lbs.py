"""Linear blend skinning as small pure, batched functions (the MANO forward pass)."""

from __future__ import annotations

import torch


def blend_shapes(betas: torch.Tensor, shapedirs: torch.Tensor) -> torch.Tensor:
    """Shape offsets. betas (B, S), shapedirs (V, 3, S) -> (B, V, 3)."""
    return torch.einsum("bl,vcl->bvc", betas, shapedirs)


def pose_features(rotmats: torch.Tensor) -> torch.Tensor:
    """MANO's pose feature: flattened (R - I) of the non-root joints. rotmats (B, J, 3, 3) -> (B, 9(J-1))."""
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).flatten(1)


def forward_kinematics(
    rotmats: torch.Tensor, joints: torch.Tensor, parents: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """World transforms of a kinematic tree posed about its rest joints.

    rotmats (B, J, 3, 3) local rotations; joints (B, J, 3) rest positions; parents[j] < j (root -1).
    Returns (posed joint positions (B, J, 3), skinning transforms (B, J, 4, 4) that map rest-pose
    points to posed points, i.e. the world transform with the rest joint removed).
    """
    batch, nj = joints.shape[:2]
    # written without in-place writes so that it traces and exports (ONNX) cleanly
    rel = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parents[1:]]], dim=1)
    local = homogeneous(rotmats, rel)
    world = [local[:, 0]]
    for j in range(1, nj):
        world.append(world[parents[j]] @ local[:, j])
    G = torch.stack(world, dim=1)
    posed = G[..., :3, 3]
    skin = homogeneous(G[..., :3, :3], posed - (G[..., :3, :3] @ joints.unsqueeze(-1)).squeeze(-1))
    return posed, skin


def homogeneous(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[[R, t], [0, 1]] from R (..., 3, 3) and t (..., 3) -> (..., 4, 4)."""
    top = torch.cat([R, t.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom = torch.cat([bottom[..., :3], torch.ones_like(bottom[..., 3:])], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def skin_vertices(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """LBS. vertices (B, V, 3), weights (V, J), transforms (B, J, 4, 4) -> (B, V, 3)."""
    T = torch.einsum("vj,bjmn->bvmn", weights, transforms)
    return (T[..., :3, :3] @ vertices.unsqueeze(-1)).squeeze(-1) + T[..., :3, 3]
