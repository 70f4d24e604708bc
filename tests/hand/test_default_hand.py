import numpy as np
import torch

from handssca.hand import HandModel
from handssca.hand.collisions import HandCollider, sample_plausible_poses
from handssca.hand.prior import (
    angles_to_matrices,
    matrices_to_angles,
    sample_anatomical_angles,
    within_limits,
)
from handssca.hand.rotations import axis_angle_to_matrix
from handssca.render import render_mesh


def test_default_hand_layout():
    m = HandModel.default()
    assert m.parents == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    assert m.shapedirs.shape[-1] == 10 and m.hands_components.shape == (45, 45)
    np.testing.assert_allclose(m.lbs_weights.sum(1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(m.J_regressor.sum(1).numpy(), 1.0, atol=1e-6)
    j = (m.J_regressor.double() @ m.v_template.double()).numpy()
    # right-hand layout: wrist on +x, fingers toward -x, thumb on +z, index on +z of pinky
    assert j[0, 0] > 0.05 and np.all(j[[3, 6, 9, 12], 0] < 0)
    assert j[15, 2] > j[3, 2] > j[6, 2] > j[12, 2] > j[9, 2]
    tips = m.v_template[m.tip_ids].numpy()
    length = np.linalg.norm(tips[2] - j[0])  # wrist to middle tip: an adult hand is 0.17-0.20 m
    assert 0.16 < length < 0.21


def test_shape_modes_change_the_skeleton_sensibly():
    m = HandModel.default().double()
    zero = torch.zeros(1, 48, dtype=torch.float64)
    b = torch.zeros(2, 10, dtype=torch.float64)
    b[0, 0], b[1, 0] = -2, 2  # global scale
    out = m(global_orient=zero[:, :3].repeat(2, 1), hand_pose=zero[:, 3:].repeat(2, 1) - m.hands_mean, betas=b)
    length = (out["joints"][:, 12] - out["joints"][:, 0]).norm(dim=-1)
    assert length[1] > length[0] * 1.1


def test_prior_respects_limits_and_is_plausible():
    m = HandModel.default()
    rng = np.random.default_rng(0)
    lim = m.extras["limits"]
    ang = sample_anatomical_angles(500, lim, rng)
    assert np.all(ang >= lim[..., 0] - 1e-12) and np.all(ang <= lim[..., 1] + 1e-12)
    assert within_limits(ang, lim).all()
    poses = sample_plausible_poses(m, 200, rng)
    assert np.all(np.abs(poses) < np.pi)
    R = angles_to_matrices(matrices_to_angles(_rotmats(poses), m.extras["axes"]), m.extras["axes"])
    np.testing.assert_allclose(R, _rotmats(poses), atol=1e-7)  # every pose is made of the prior's angles
    back = matrices_to_angles(R, m.extras["axes"])
    free = np.all(np.abs(np.abs(back[..., 0]) - np.pi / 2) > 1e-6, axis=1)  # (a flexion of 90 degrees locks the angles)
    assert free.mean() > 0.5 and within_limits(back[free], lim, tol=1e-6).all()
    # no part of the mesh deep inside another (the check of handssca.hand.collisions)
    collider = HandCollider.from_model(m)
    assert np.all(collider.penetration(R) <= collider.max_depth + 1e-9)
    # flexion curls fingertips toward the palm side (-y), never backwards through the palm
    out = m(global_orient=torch.zeros(200, 3), hand_pose=torch.tensor(poses, dtype=torch.float32) - m.hands_mean)
    tips_y = out["joints"][:, [8, 12, 16, 20], 1]
    assert (tips_y < 0.02).float().mean() > 0.95


def _rotmats(poses: np.ndarray) -> np.ndarray:
    return axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float64).reshape(-1, 15, 3)).numpy()


def test_default_hand_renders_as_one_connected_silhouette():
    m = HandModel.default(flat_hand_mean=True)
    v = m.v_template.double().numpy()
    # look at the palm from below: x right, the camera 0.5 m away along -y
    cam = np.stack([v[:, 0] - v[:, 0].mean(), -(v[:, 2] - v[:, 2].mean()), v[:, 1] + 0.5], 1)
    r = render_mesh(cam, m.faces, np.array([[400.0, 0, 64], [0, 400.0, 64], [0, 0, 1]]), (128, 128))
    from scipy import ndimage

    labels, n = ndimage.label(r.mask)
    assert n == 1 and 0.15 < r.mask.mean() < 0.6


def test_nails_of_the_texture_sit_on_the_back_of_the_distal_phalanges():
    """The texture's alpha (0 on nails) read at each face's uv centroid: nail faces belong to the five
    distal phalanges, every finger has some, and the four fingers' nail faces look to the back (+y)."""
    from handssca.render.raster import sample_texture, texture_float, vertex_normals

    m = HandModel.default(dtype=torch.float64)
    v, f = m.v_template.numpy(), m.faces
    alpha = sample_texture(texture_float(m.texture), m.uv[m.faces_uv].mean(1))[:, 3]
    nail = alpha < 0.5
    owner = m.lbs_weights.numpy()[f].sum(1).argmax(1)  # each face's dominant joint
    assert set(owner[nail].tolist()) == {3, 6, 9, 12, 15}
    normals = vertex_normals(v, f)[f].mean(1)
    fingers = nail & np.isin(owner, [3, 6, 9, 12])
    assert (normals[fingers, 1] > 0.3).mean() > 0.9
