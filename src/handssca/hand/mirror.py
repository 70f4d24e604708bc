"""Mirroring hands across the camera's x = 0 plane: left <-> right.

A left hand with pose theta, shape beta and translation t is the mirror image of the right hand with
``mirror_pose(theta)``, beta and ``mirror_points(t)``, provided the left model is the exact mirror of
the right one (MANO's left file is, once its shapedirs are fixed; the default hand's is by construction).
"""

from __future__ import annotations

import numpy as np
import torch

_FLIP = (1.0, -1.0, -1.0)


def mirror_pose(pose: torch.Tensor) -> torch.Tensor:
    """Per-joint axis-angle (x, y, z) -> (x, -y, -z). pose (..., 3K) or (..., K, 3)."""
    flip = pose.new_tensor(_FLIP)
    if pose.shape[-1] == 3:
        return pose * flip
    return (pose.reshape(*pose.shape[:-1], -1, 3) * flip).reshape(pose.shape)


def mirror_rotmats(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> M R M with M = diag(-1, 1, 1)."""
    m = R.new_tensor([-1.0, 1.0, 1.0])
    return R * m[:, None] * m[None, :]


def mirror_points(p: torch.Tensor) -> torch.Tensor:
    """Points or translations (..., 3): x -> -x."""
    return p * p.new_tensor([-1.0, 1.0, 1.0])


def mirror_faces(faces: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Re-wind triangles (F, 3) so that a mirrored mesh keeps outward normals."""
    return faces[:, [0, 2, 1]]
