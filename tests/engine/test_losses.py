import torch

from handssca.hand import HandModel
from handssca.losses import compute_losses

WEIGHTS = {"vertices": 1.0, "joints": 1.0, "pose": 1.0, "shape": 1.0, "joints_img": 1.0, "articulation": 1.0}


def _pred(hand, pose, betas):
    from handssca.hand.rotations import axis_angle_to_matrix

    out = hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
    return {"vertices": out["vertices"], "joints": out["joints"], "pose_aa": pose, "betas": betas,
            "rotmats": axis_angle_to_matrix(pose.reshape(-1, 16, 3)), "joints_img": torch.zeros(len(pose), 21, 2)}  # fmt: skip


def _batch(pose, betas):
    n = len(pose)
    return {"pose": pose, "betas": betas, "valid_mano": torch.ones(n), "joints_img": torch.zeros(n, 21, 2),
            "valid_joints_img": torch.ones(n)}  # fmt: skip


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
