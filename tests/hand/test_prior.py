import math

import numpy as np
import pytest
import torch

from handssca.hand import HandModel
from handssca.hand.collisions import HandCollider, capsule_depth, point_segment_distance
from handssca.hand.prior import (
    DIP_PIP_RATIO,
    FINGER_CHAINS,
    THUMB_CHAIN,
    angles_to_axis_angle,
    angles_to_matrices,
    default_limits,
    effective_limits,
    joint_frames,
    matrices_to_angles,
    palm_normal,
    rest_angles,
    sample_anatomical_angles,
    sample_hand_pose,
    thumb_opposition,
    within_limits,
)

from .mano_files import write_model

D = math.pi / 180
S = 1 / math.sqrt(2)


def synthetic_skeleton() -> np.ndarray:
    """A flat right hand in MANO's layout: straight fingers along -x at z offsets, a thumb along (-1, 0, 1)/sqrt 2."""
    J = np.zeros((16, 3))
    J[0] = (0.09, 0, 0)
    for mcp, z in ((1, 0.02), (4, 0.0), (10, -0.02), (7, -0.04)):
        for k in range(3):
            J[mcp + k] = (-0.03 * k, 0, z)
    for k in range(3):
        J[13 + k] = np.array([0.06, 0, 0.02]) + 0.03 * k * np.array([-S, 0, S])
    return J


def test_joint_frames_on_a_synthetic_skeleton():
    F = joint_frames(synthetic_skeleton(), np.array([0.0, -1.0, 0.0]))
    finger = np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]).T  # columns: twist -x, flexion +z, abduction +y
    thumb = np.array([[-S, 0, S], [0, -1, 0], [S, 0, S]]).T  # twist along the thumb, flexion -y, abduction
    for k in range(12):
        np.testing.assert_allclose(F[k], finger, atol=1e-12)
    for k in THUMB_CHAIN:
        np.testing.assert_allclose(F[k], thumb, atol=1e-12)

    # what positive angles do to a bone: fingers curl toward the palm (-y) and abduct toward the thumb (+z);
    # the thumb flexes across the palm toward the pinky (-z) and abducts out of the palm (-y)
    def turned(k, dof):
        a = np.zeros((1, 15, 3))
        a[0, k, dof] = 0.3
        return angles_to_matrices(a, F)[0, k] @ F[k][:, 0] - F[k][:, 0]

    assert turned(0, 0)[1] < -0.05 and turned(0, 1)[2] > 0.05
    assert turned(12, 0)[2] < -0.05 and turned(12, 1)[1] < -0.05
    # the rest pose's anatomical angles: straight fingers parallel to the hand's axis 0; the thumb lies
    # 45 - atan(0.02/0.09) degrees radial of the index metacarpal (wrist to index MCP), in the palm plane
    rest = rest_angles(synthetic_skeleton(), F, np.array([0.0, -1.0, 0.0]))
    expected = np.zeros((15, 3))
    expected[12, 0] = -(45 * D - math.atan2(0.02, 0.09))
    np.testing.assert_allclose(rest, expected, atol=1e-12)
    np.testing.assert_allclose(palm_normal(synthetic_skeleton()), [0, -1, 0], atol=1e-12)


def test_angle_conversions_invert():
    F = joint_frames(synthetic_skeleton(), np.array([0.0, -1.0, 0.0]))
    ang = sample_anatomical_angles(200, default_limits(), np.random.default_rng(0))
    ang[:, :, 0] = np.clip(ang[:, :, 0], -89 * D, 120 * D)
    ang[ang[:, :, 0] == 90 * D, 0] = 91 * D  # exactly 90 degrees of flexion: abduction and twist are one angle
    np.testing.assert_allclose(matrices_to_angles(angles_to_matrices(ang, F), F), ang, atol=1e-9)
    aa = torch.as_tensor(angles_to_axis_angle(ang, F)).reshape(200, 15, 3)
    from handssca.hand.rotations import axis_angle_to_matrix

    np.testing.assert_allclose(axis_angle_to_matrix(aa).numpy(), angles_to_matrices(ang, F), atol=1e-9)


@pytest.mark.parametrize("shifted", [False, True])
def test_sampled_angles_respect_limits_and_couplings(shifted):
    rest = np.zeros((15, 3))
    if shifted:  # a rest pose with spread fingers and a lifted thumb: limits move, the anatomy does not
        rest[[0, 3, 6, 9], 1] = np.array([9, -6, -20, -16]) * D
        rest[12, :2] = np.array([-30, 19]) * D
    lim = default_limits(rest)
    ang = sample_anatomical_angles(2000, lim, np.random.default_rng(1))
    assert np.all(ang >= lim[..., 0] - 1e-12) and np.all(ang <= lim[..., 1] + 1e-12)
    assert within_limits(ang, lim).all()
    anat = ang + rest  # anatomical angles
    for mcp, pip, dip in FINGER_CHAINS.values():
        pip_f, dip_f = anat[:, pip, 0], anat[:, dip, 0]
        # DIP = ratio * PIP (ratio 2/3 +- 0.1) plus a little noise (sd 2 degrees)
        assert np.all(np.abs(dip_f - DIP_PIP_RATIO[0] * pip_f) <= DIP_PIP_RATIO[1] * pip_f + 10 * D)
        bent = pip_f > 30 * D
        assert abs((dip_f[bent] / pip_f[bent]).mean() - DIP_PIP_RATIO[0]) < 0.03
        # abduction narrows as the MCP flexes: at >= 80 degrees at most ~1/3 of the range is left
        hi = default_limits()[mcp, 1]
        fist = anat[:, mcp, 0] > 80 * D
        assert fist.sum() > 20 and np.all(np.abs(anat[fist, mcp, 1]) <= np.abs(hi).max() * 0.35)
    e = effective_limits(ang, lim)
    assert np.all(e[:, 0, 1, 1] - e[:, 0, 1, 0] <= lim[0, 1, 1] - lim[0, 1, 0] + 1e-12)


def test_capsule_depth_closed_forms():
    a, b = np.array([[0.0, 0, 0]]), np.array([[1.0, 0, 0]])
    pts = np.array([[0.5, 0.03, 0.04], [-0.3, 0.4, 0.0], [1.2, 0.0, 0.0]])  # beside, before a, after b
    np.testing.assert_allclose(point_segment_distance(pts, a, b)[:, 0], [0.05, 0.5, 0.2], atol=1e-12)
    np.testing.assert_allclose(capsule_depth(pts, a, b, np.array([0.1]))[:, 0], [0.05, -0.4, -0.1], atol=1e-12)
    # two capsules (radius 0.1) whose axes cross 0.15 apart: the deepest surface point of the second lies
    # r1 + r2 - 0.15 = 0.05 inside the first
    phi, h = np.meshgrid(np.linspace(0, 2 * np.pi, 73), np.linspace(-0.5, 0.5, 101))
    surface = np.stack([0.5 + 0.1 * np.cos(phi), 0.15 + 0.1 * np.sin(phi), h], -1).reshape(-1, 3)
    assert abs(capsule_depth(surface, a, b, np.array([0.1])).max() - 0.05) < 1e-9
    # batched: (n, P, 3) points against (n, C, 3) segments
    d = point_segment_distance(np.stack([pts, pts + 1]), np.stack([a, a + 1]), np.stack([b, b + 1]))
    np.testing.assert_allclose(d[1, :, 0], [0.05, 0.5, 0.2], atol=1e-12)


@pytest.fixture(scope="module")
def hand():
    m = HandModel.default().double()
    v = m.v_template.numpy()
    J = m.J_regressor.numpy() @ v
    n = palm_normal(J)
    F, lim = m.extras["axes"], m.extras["limits"]
    # the shipped prior is what the prior's functions give for the asset's joints and bone ends
    tips = m.extras["tips"]
    np.testing.assert_allclose(F, joint_frames(J, n, tips), atol=1e-6)
    np.testing.assert_allclose(lim, default_limits(rest_angles(J, F, n, tips)), atol=1e-6)
    return m, J, n, F, lim, HandCollider.from_model(m)


def test_collider_on_the_default_hand(hand):
    m, J, n, F, lim, col = hand
    zero = np.zeros((1, 15, 3))
    assert col.penetration(angles_to_matrices(zero, F))[0] == 0.0
    # the index curled far past its limits drives its tip into the palm
    a = zero.copy()
    a[0, 0, 0], a[0, 1, 0], a[0, 2, 0] = 100 * D, 130 * D, 110 * D
    assert col.penetration(angles_to_matrices(a, F))[0] > 0.006
    # the thumb swung across the palm in the palm plane (no palmar abduction) goes through the index
    a = zero.copy()
    a[0, 12, :2] = np.array([60, -20]) * D
    assert col.penetration(angles_to_matrices(a, F))[0] > 0.006


def test_sampled_default_hand_poses_pass_the_check(hand):
    m, J, n, F, lim, col = hand
    rng = np.random.default_rng(2)
    raw = angles_to_matrices(sample_anatomical_angles(400, lim, rng), F)
    rejected = (col.penetration(raw) > col.max_depth).mean()
    assert rejected < 0.5  # the prior itself is mostly plausible; the check removes the rest
    poses = sample_hand_pose(100, rng, F, lim, collider=col)
    from handssca.hand.rotations import axis_angle_to_matrix

    R = axis_angle_to_matrix(torch.as_tensor(poses).reshape(-1, 15, 3)).numpy()
    assert np.all(col.penetration(R) <= col.max_depth + 1e-9)
    back = matrices_to_angles(R, F)
    free = np.all(np.abs(np.abs(back[..., 0]) - np.pi / 2) > 1e-6, axis=1)  # 90 degrees of flexion locks the angles
    assert within_limits(back[free], lim, tol=1e-6).all()
    # the thumb tip never goes behind the palm plane by more than a few mm
    X, _, _ = col.posed(R)
    out = m(global_orient=torch.zeros(100, 3, dtype=torch.float64), hand_pose=torch.as_tensor(poses) - m.hands_mean)
    thumb_tip = out["joints"][:, 4].numpy()
    assert np.all((thumb_tip - J[0]) @ n > -0.004)


def test_opposition_brings_the_thumb_to_the_fingertips(hand):
    m, J, n, F, lim, col = hand
    rest = rest_angles(J, F, n)
    o = np.linspace(0, 1, 21)
    a = np.zeros((len(o), 15, 3))
    for mcp, pip, dip in FINGER_CHAINS.values():  # fingers half flexed, ready to pinch
        a[:, mcp, 0], a[:, pip, 0], a[:, dip, 0] = 40 * D, 50 * D, 33 * D
    a[:, 12] = thumb_opposition(o)
    a[:, 13, 0], a[:, 14, 0] = 15 * D, 30 * D
    a -= rest  # anatomical -> relative to the rest pose
    X, _, _ = HandCollider.from_model(m, max_vertices=None).posed(angles_to_matrices(a, F))
    tips = X[:, m.tip_ids.numpy()]
    dist = np.linalg.norm(tips[:, 1:] - tips[:, :1], axis=-1)  # thumb tip to each fingertip
    nearest = dist.min(1)
    assert nearest[-1] < 0.6 * nearest[0] and nearest.min() < 0.025
    assert np.all(np.diff(dist[:, 3]) < 0.002)  # toward the pinky all the way
    assert np.all((tips[:, 0] - J[0]) @ n > -0.003)  # in front of the palm plane, never behind it
    assert np.all(col.penetration(angles_to_matrices(a, F)) < 0.008)


def test_mano_file_without_a_prior_uses_its_coefficients(tmp_path):
    """A MANO file's prior: its own pose coefficients plus a little noise (0.1 of each one's spread)."""
    path, arrays = write_model(tmp_path, "npz")
    m = HandModel.from_file(path, dtype=torch.float64)
    assert "axes" not in m.extras and "_prior_collider" not in m.__dict__
    poses = m.sample_prior(40, np.random.default_rng(0))
    assert "_prior_collider" not in m.__dict__  # captured poses are not checked against a capsule fit
    # back to coefficients (components are orthonormal rows): each lies near one of the file's rows
    c = (poses - m.full_hands_mean.numpy()) @ np.linalg.pinv(m.hands_components.numpy())
    spread = m.hands_coeffs.std(0)
    nearest = np.abs((c[:, None] - m.hands_coeffs[None]) / spread).max(-1).min(1)
    assert np.all(nearest < 0.6), nearest
    assert np.all(np.abs(c / spread).max(-1) > 0.6)  # and not trivially near zero
    with pytest.raises(ValueError, match="no pose prior"):
        sample_hand_pose(1, np.random.default_rng(0), None, None)


def test_a_prior_that_cannot_pass_says_so_once(hand, caplog):
    m, J, n, F, lim, col = hand
    draw = lambda k: angles_to_matrices(sample_anatomical_angles(k, lim, np.random.default_rng(k)), F)  # noqa: E731
    strict = HandCollider.from_model(m, max_depth=-1.0)  # nothing passes
    with caplog.at_level("WARNING", logger="handssca.hand"):
        out = strict.rejection_sample(draw, 3, max_rounds=2)
        strict.rejection_sample(draw, 3, max_rounds=2)
    assert out.shape == (3, 15, 3, 3)
    assert sum("still interpenetrate" in r.message for r in caplog.records) == 1
