import numpy as np
import torch

from handssca.hand import HandModel
from handssca.losses import compute_losses

WEIGHTS = {"vertices": 1.0, "joints": 1.0, "pose": 1.0, "shape": 1.0, "joints_img": 1.0, "articulation": 1.0}


def _pred(hand, pose, betas):
    from handssca.hand.rotations import axis_angle_to_matrix

    out = hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
    return {
        "vertices": out["vertices"],
        "joints": out["joints"],
        "pose_aa": pose,
        "betas": betas,
        "rotmats": axis_angle_to_matrix(pose.reshape(-1, 16, 3)),
        "joints_img": torch.zeros(len(pose), 21, 2),
    }


def _batch(pose, betas):
    n = len(pose)
    return {
        "pose": pose,
        "betas": betas,
        "valid_mano": torch.ones(n),
        "joints_img": torch.zeros(n, 21, 2),
        "valid_joints_img": torch.ones(n),
    }


def test_articulation_ignores_the_global_orientation_and_shape():
    hand = HandModel.default()
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(3, 48, generator=g) * 0.3
    betas = torch.randn(3, 10, generator=g)
    batch = _batch(pose, betas)
    exact = compute_losses(_pred(hand, pose, betas), batch, hand, WEIGHTS)
    assert exact["articulation"] < 1e-12 and exact["joints"] < 1e-12
    turned = pose.clone()
    turned[:, :3] += 1.0  # wrong global orientation, right fingers and shape
    off = compute_losses(_pred(hand, turned, betas), batch, hand, WEIGHTS)
    assert off["joints"] > 1e-4 and off["articulation"] < 1e-12
    fingers = pose.clone()
    fingers[:, 3:] += 0.3  # right orientation, wrong fingers: the two terms agree exactly
    bent = compute_losses(_pred(hand, fingers, betas), batch, hand, WEIGHTS)
    torch.testing.assert_close(bent["articulation"], bent["joints"])
    assert bent["articulation"] > 1e-6
    shaped = compute_losses(_pred(hand, pose, betas + 1.0), batch, hand, WEIGHTS)  # only the shape is wrong
    assert shaped["joints"] > 1e-6 and shaped["articulation"] < 1e-12


def test_articulation_is_off_by_default():
    from handssca.config import LOSS_WEIGHTS

    hand = HandModel.default()
    pose, betas = torch.zeros(2, 48), torch.zeros(2, 10)
    out = compute_losses(_pred(hand, pose + 0.1, betas), _batch(pose, betas), hand, LOSS_WEIGHTS)
    assert LOSS_WEIGHTS["articulation"] == 0.0 and "articulation" not in out


def _heatmap_kl_reference(heatmaps: np.ndarray, joints_img: np.ndarray, sigma: float) -> np.ndarray:
    """Per-sample mean over joints of KL(Gaussian || heatmap), float64, one cell at a time."""
    from scipy.special import rel_entr

    b, j, s, _ = heatmaps.shape
    out = np.zeros(b)
    for n in range(b):
        for k in range(j):
            t = np.zeros((s, s))
            for r in range(s):
                for c in range(s):
                    dx = (c + 0.5) - joints_img[n, k, 0] * s
                    dy = (r + 0.5) - joints_img[n, k, 1] * s
                    t[r, c] = np.exp(-(dx * dx + dy * dy) / (2 * sigma**2))
            t /= t.sum()
            out[n] += rel_entr(t, heatmaps[n, k]).sum() / j
    return out


def test_heatmap_term_is_the_kl_divergence_from_gaussian_targets():
    from handssca.losses import heatmap_kl, heatmap_log_targets

    g = torch.Generator().manual_seed(0)
    heatmaps = torch.softmax(torch.randn(3, 21, 8 * 8, generator=g, dtype=torch.float64), -1).reshape(3, 21, 8, 8)
    joints = torch.rand(3, 21, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # a few outside the crop
    ref = _heatmap_kl_reference(heatmaps.numpy(), joints.numpy(), 1.0)
    torch.testing.assert_close(heatmap_kl(heatmaps, joints), torch.from_numpy(ref), rtol=1e-10, atol=1e-12)
    # zero at the target, also for a joint far outside the crop (normalised in log space)
    joints[0, 0] = torch.tensor([3.0, -2.0], dtype=torch.float64)
    target = heatmap_log_targets(joints, 8).exp()
    assert torch.isfinite(target).all() and heatmap_kl(target, joints).abs().max() < 1e-12
    # through compute_losses: samples without 2D labels do not count
    hand = HandModel.default()
    pose, betas = torch.zeros(3, 48), torch.zeros(3, 10)
    pred = _pred(hand, pose, betas)
    pred["heatmaps"] = heatmaps.float()
    batch = _batch(pose, betas)
    batch["joints_img"] = joints.float()
    batch["valid_joints_img"] = torch.tensor([1.0, 0.0, 1.0])
    got = compute_losses(pred, batch, hand, {**WEIGHTS, "heatmaps": 2.0})["heatmaps"]
    expected = 2.0 * (heatmap_kl(heatmaps, joints)[[0, 2]]).mean()
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-7)
