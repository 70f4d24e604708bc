"""A pose prior with anatomical joint limits, for sampling plausible hand poses.

The default hand stores, for each of the 15 finger joints in MANO order, an anatomical frame
(columns: twist axis = bone direction, flexion axis, abduction axis; in the rest-pose world frame,
where MANO's local rotations are expressed) and limits in radians for (flexion, abduction, twist).
A pose is drawn with a shared "closure" latent (fingers curl together, ring and pinky coupled),
PIP/DIP coupling, and per-joint noise, then clipped to the limits. For a MANO file without these
arrays, poses are drawn from the file's own ``hands_coeffs`` (its training poses) plus noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from handssca.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

# MANO joint ids of each finger chain (MCP, PIP, DIP) and of the thumb (CMC, MCP, IP)
FINGER_CHAINS = {"index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8), "ring": (9, 10, 11)}
THUMB_CHAIN = (12, 13, 14)  # indices into the 15 finger joints (MANO joints 13-15)

_D = math.pi / 180
#: Limits (degrees) of (flexion, abduction, twist) for MCP, PIP, DIP of fingers and CMC, MCP, IP of the thumb.
FINGER_LIMITS_DEG = {
    "mcp": ((-20, 90), (-20, 20), (-5, 5)),
    "pip": ((0, 110), (-3, 3), (-3, 3)),
    "dip": ((0, 80), (-3, 3), (-3, 3)),
}
THUMB_LIMITS_DEG = {
    "cmc": ((-20, 50), (-10, 60), (-20, 40)),
    "mcp": ((0, 60), (-5, 5), (-5, 5)),
    "ip": ((-10, 80), (-3, 3), (-3, 3)),
}


def default_limits() -> np.ndarray:
    """(15, 3, 2) limits in radians for the 15 finger joints in MANO order."""
    lim = np.zeros((15, 3, 2))
    for chain in FINGER_CHAINS.values():
        for j, name in zip(chain, ("mcp", "pip", "dip")):
            lim[j] = np.array(FINGER_LIMITS_DEG[name]) * _D
    for j, name in zip(THUMB_CHAIN, ("cmc", "mcp", "ip")):
        lim[j] = np.array(THUMB_LIMITS_DEG[name]) * _D
    return lim


def sample_anatomical_angles(n: int, limits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 15, 3) angles (flexion, abduction, twist) in radians within ``limits`` (15, 3, 2)."""
    lo, hi = limits[..., 0], limits[..., 1]
    ang = np.zeros((n, 15, 3))
    closure = rng.beta(1.2, 1.6, size=n)
    spread = rng.normal(0.0, 0.5, size=n)
    per_finger = {k: np.clip(closure + rng.normal(0, 0.18, n), 0, 1) for k in ("index", "middle", "ring")}
    per_finger["pinky"] = np.clip(per_finger["ring"] + rng.normal(0, 0.08, n), 0, 1)
    for k, (mcp, pip, dip) in FINGER_CHAINS.items():
        c = per_finger[k]
        ang[:, mcp, 0] = lo[mcp, 0] + (hi[mcp, 0] - lo[mcp, 0]) * np.clip(
            c * 0.85 + 0.18 + rng.normal(0, 0.08, n), 0, 1
        )
        ang[:, pip, 0] = hi[pip, 0] * np.clip(c + rng.normal(0, 0.1, n), 0, 1)
        ang[:, dip, 0] = np.clip(ang[:, pip, 0] * rng.uniform(0.55, 0.8, n), lo[dip, 0], hi[dip, 0])
        side = {"index": 1.0, "middle": 0.2, "ring": -0.6, "pinky": -1.0}[k]
        ang[:, mcp, 1] = (spread * side * (1 - c) * 0.6 + rng.normal(0, 0.12, n)) * hi[mcp, 1]
    cmc, tmcp, ip = THUMB_CHAIN
    thumb = np.clip(closure + rng.normal(0, 0.25, n), 0, 1)
    ang[:, cmc, 0] = lo[cmc, 0] + (hi[cmc, 0] - lo[cmc, 0]) * np.clip(thumb + rng.normal(0, 0.15, n), 0, 1)
    ang[:, cmc, 1] = rng.uniform(lo[cmc, 1], hi[cmc, 1], n)
    ang[:, cmc, 2] = lo[cmc, 2] + (hi[cmc, 2] - lo[cmc, 2]) * np.clip(thumb * 0.7 + rng.uniform(0, 0.3, n), 0, 1)
    ang[:, tmcp, 0] = hi[tmcp, 0] * np.clip(thumb + rng.normal(0, 0.2, n), 0, 1)
    ang[:, ip, 0] = lo[ip, 0] + (hi[ip, 0] - lo[ip, 0]) * np.clip(thumb + rng.normal(0, 0.2, n), 0, 1)
    for j in range(15):  # small noise on the remaining dofs
        for k in range(3):
            if not np.any(ang[:, j, k]):
                ang[:, j, k] = rng.normal(0, 0.25, n) * (hi[j, k] - lo[j, k]) / 2
    return np.clip(ang, lo, hi)


def angles_to_axis_angle(angles: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Anatomical angles (n, 15, 3) -> MANO axis-angle (n, 45) with frames ``axes`` (15, 3, 3).

    R = B Rz(abd) Ry(flex) Rx(twist) B^T where B's columns are the (twist, flexion, abduction) axes.
    """
    a = torch.as_tensor(angles, dtype=torch.float64)
    B = torch.as_tensor(axes, dtype=torch.float64)
    zero = torch.zeros_like(a[..., 0])
    rx = axis_angle_to_matrix(torch.stack([a[..., 2], zero, zero], -1))
    ry = axis_angle_to_matrix(torch.stack([zero, a[..., 0], zero], -1))
    rz = axis_angle_to_matrix(torch.stack([zero, zero, a[..., 1]], -1))
    R = B @ (rz @ ry @ rx) @ B.transpose(-1, -2)
    return matrix_to_axis_angle(R).reshape(len(angles), 45).numpy()


def sample_hand_pose(
    n: int,
    rng: np.random.Generator,
    axes: np.ndarray | None,
    limits: np.ndarray | None,
    hands_coeffs: np.ndarray | None = None,
    hands_components: np.ndarray | None = None,
    hands_mean: np.ndarray | None = None,
) -> np.ndarray:
    """(n, 45) full finger poses (axis-angle, MANO order, mean included) from the prior.

    Uses the anatomical frames and limits when given (the default hand), else the model's own
    ``hands_coeffs`` (official MANO files) with a little noise.
    """
    if axes is not None and limits is not None:
        return angles_to_axis_angle(sample_anatomical_angles(n, limits, rng), axes)
    if hands_coeffs is None or hands_components is None or hands_mean is None:
        raise ValueError("this hand model has no pose prior: neither anatomical axes/limits nor hands_coeffs")
    idx = rng.integers(0, len(hands_coeffs), n)
    coeffs = hands_coeffs[idx] + rng.normal(0, 0.1, (n, hands_coeffs.shape[1])) * hands_coeffs.std(0)
    return coeffs @ hands_components[: coeffs.shape[1]] + hands_mean
