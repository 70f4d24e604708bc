"""The paper's training losses: MSE on vertices, joints, pose rotations, betas and 2D joints.

As in the official code, 3D targets are the hand layer's output for the ground-truth MANO parameters
(MANO frame, no translation), and the pose term compares predicted rotation matrices with
Rodrigues(GT axis-angle), both relative to ``hands_mean``. Samples whose labels are missing
(``valid_*`` = 0) do not contribute; with every label present each term equals ``F.mse_loss``.

One term is not in the paper: ``articulation``, the joint MSE of the predicted finger pose posed
with the *ground-truth* global orientation and shape (weight 0 in the paper's configs). Early in
training, while the orientation is still wrong, the 3D terms are smallest for a small, closed hand
(the shrinking that MSE does under uncertainty): the network then learns fists and small betas.
This term scores the finger articulation alone, so short runs (the synthetic CPU config) learn it.

A second term not in the paper, ``heatmaps`` (weight 0 in the paper's configs): the KL divergence
from a Gaussian around each ground-truth 2D joint to the predicted heatmap. The paper supervises
only the soft-argmax coordinates, which gives a flat heatmap little gradient; the dense target
makes short runs localise joints (the synthetic CPU config, docs/training.md).
"""

from __future__ import annotations

import torch

from handssca.hand.rotations import axis_angle_to_matrix


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    per_sample = (pred - target).square().flatten(1).mean(1)
    valid = valid.to(per_sample.dtype)
    return (per_sample * valid).sum() / valid.sum().clamp_min(1.0)


def heatmap_log_targets(joints_img: torch.Tensor, size: int, sigma: float = 1.0) -> torch.Tensor:
    """log of Gaussian target heatmaps (B, J, S, S), each summing to 1, for joints_img (B, J, 2) in
    normalised crop coordinates (cell i's centre at (i + 0.5) / S); sigma in heatmap cells."""
    grid = (torch.arange(size, dtype=joints_img.dtype, device=joints_img.device) + 0.5) / size
    dx = (grid - joints_img[..., 0:1]) * size  # (B, J, S) in cells
    dy = (grid - joints_img[..., 1:2]) * size
    g = -(dy[..., :, None].square() + dx[..., None, :].square()) / (2 * sigma**2)
    return (
        g - torch.logsumexp(g.flatten(-2), dim=-1)[..., None, None]
    )  # normalised in log space: joints far outside stay finite


def heatmap_kl(heatmaps: torch.Tensor, joints_img: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Per-sample mean over joints of KL(Gaussian target || predicted heatmap). heatmaps (B, J, S, S)
    summing to 1 per joint; joints_img (B, J, 2) normalised. Returns (B,)."""
    log_t = heatmap_log_targets(joints_img.to(heatmaps.dtype), heatmaps.shape[-1], sigma)
    kl = (log_t.exp() * (log_t - heatmaps.clamp_min(1e-12).log())).sum((-1, -2))
    return kl.mean(-1)


def hand_targets(hand, pose: torch.Tensor, betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """Vertices and joints of the hand layer for GT (pose (B,48) relative to hands_mean, betas (B,10))."""
    with torch.no_grad():
        out = hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
    return {"vertices": out["vertices"], "joints": out["joints"]}


def compute_losses(
    pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], hand, weights: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Weighted loss terms and their sum (``total``). pred: the model's output; batch: collated samples."""
    pose, betas = batch["pose"].to(pred["betas"]), batch["betas"].to(pred["betas"])
    valid_mano = batch["valid_mano"].to(pred["betas"])
    tgt = hand_targets(hand, pose, betas)
    gt_rot = axis_angle_to_matrix(pose.reshape(-1, 16, 3))
    terms = {
        "vertices": _masked_mse(pred["vertices"], tgt["vertices"], valid_mano),
        "joints": _masked_mse(pred["joints"], tgt["joints"], valid_mano),
        "pose": _masked_mse(pred["rotmats"], gt_rot, valid_mano),
        "shape": _masked_mse(pred["betas"], betas, valid_mano),
        "joints_img": _masked_mse(
            pred["joints_img"], batch["joints_img"].to(pred["joints_img"]), batch["valid_joints_img"].to(pred["betas"])
        ),
    }
    if weights.get("heatmaps", 0.0):
        valid = batch["valid_joints_img"].to(pred["betas"])
        per_sample = heatmap_kl(pred["heatmaps"], batch["joints_img"].to(pred["heatmaps"]))
        terms["heatmaps"] = (per_sample * valid).sum() / valid.sum().clamp_min(1.0)
    if weights.get("articulation", 0.0):
        canon = hand(global_orient=pose[:, :3], hand_pose=pred["pose_aa"][:, 3:], betas=betas)
        terms["articulation"] = _masked_mse(canon["joints"], tgt["joints"], valid_mano)
    out = {k: v * weights.get(k, 0.0) for k, v in terms.items()}
    out["total"] = sum(out.values())
    return out
