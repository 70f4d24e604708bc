import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handssca.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix


def test_axis_angle_to_matrix_matches_scipy():
    aa = np.random.default_rng(0).normal(size=(50, 3)) * 1.5
    aa[0] = 0
    aa[1] = [1e-9, -2e-9, 0]
    ours = axis_angle_to_matrix(torch.tensor(aa)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-7, 1e-4, 0.5, 2.0, np.pi - 1e-3, np.pi - 1e-7, np.pi])
def test_matrix_to_axis_angle_robust(angle):
    axes = np.random.default_rng(1).normal(size=(20, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    aa = axes * angle
    R = torch.tensor(Rotation.from_rotvec(aa).as_matrix())
    back = matrix_to_axis_angle(R)
    # compare as rotations (at pi the axis sign is ambiguous)
    np.testing.assert_allclose(axis_angle_to_matrix(back).numpy(), R.numpy(), atol=1e-9)
    assert torch.all(back.norm(dim=-1) <= np.pi + 1e-9)
    if angle < 3.0:
        np.testing.assert_allclose(back.numpy(), aa, atol=1e-9)


def test_matrix_to_axis_angle_gradient_is_finite_at_identity():
    R = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_()
    matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()
    aa = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_rot6d_round_trip_and_orthonormal():
    R = torch.tensor(Rotation.random(30, random_state=2).as_matrix())
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    M = rot6d_to_matrix(torch.randn(30, 6, dtype=torch.float64))
    torch.testing.assert_close(M @ M.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(30, 3, 3))
    torch.testing.assert_close(torch.linalg.det(M), torch.ones(30, dtype=torch.float64))
