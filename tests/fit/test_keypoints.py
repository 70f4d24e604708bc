"""The fit's keypoint model against the hand layer itself and its Jacobian against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handssca.fit.keypoints import (
    KeypointModel,
    keypoint_jacobian,
    log_rotation,
    pose_keypoints,
    right_jacobian,
    rodrigues,
)
from handssca.hand import HandModel
from tests.hand.mano_files import write_model


def _hands(tmp_path):
    path, _ = write_model(tmp_path, "npz", seed=3)
    return {
        "default": HandModel.default(dtype=torch.float64),
        "mano": HandModel.from_file(path, dtype=torch.float64),
        "mano_flat": HandModel.from_file(path, flat_hand_mean=True, dtype=torch.float64),
    }


def _random_params(rng, B):
    pose = rng.normal(0, 0.5, (B, 48))
    betas = rng.normal(0, 1, (B, 10))
    transl = rng.normal(0, 0.1, (B, 3)) + [0, 0, 0.5]
    return pose, betas, transl


@pytest.mark.parametrize("kind", ["default", "mano", "mano_flat"])
def test_keypoints_equal_the_hand_layer(tmp_path, kind):
    hand = _hands(tmp_path)[kind]
    km = KeypointModel.from_hand(hand)
    pose, betas, transl = _random_params(np.random.default_rng(0), 4)
    with torch.no_grad():
        out = hand(
            global_orient=torch.tensor(pose[:, :3]),
            hand_pose=torch.tensor(pose[:, 3:]),
            betas=torch.tensor(betas),
            transl=torch.tensor(transl),
        )
    posed = pose_keypoints(km, pose, betas, transl)
    np.testing.assert_allclose(posed.keypoints, out["joints"].numpy(), atol=1e-12)
    np.testing.assert_allclose(posed.origins, out["joints16"].numpy(), atol=1e-12)


@pytest.mark.parametrize("kind", ["default", "mano"])
def test_jacobian_matches_central_differences(tmp_path, kind):
    hand = _hands(tmp_path)[kind]
    km = KeypointModel.from_hand(hand)
    rng = np.random.default_rng(1)
    pose, betas, transl = _random_params(rng, 2)
    offsets = rng.normal(0, 0.005, (21, 3))
    x = np.concatenate([pose, betas, transl], 1)

    def f(x):
        return pose_keypoints(km, x[:, :48], x[:, 48:58], x[:, 58:], offsets).keypoints

    J = keypoint_jacobian(km, pose, pose_keypoints(km, pose, betas, transl, offsets))
    eps = 1e-6
    numeric = np.zeros_like(J)
    for p in range(x.shape[1]):
        d = np.zeros_like(x)
        d[:, p] = eps
        numeric[..., p] = (f(x + d) - f(x - d)) / (2 * eps)
    np.testing.assert_allclose(J, numeric, atol=1e-7)


def test_rotation_helpers_against_scipy():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(2)
    aa = np.concatenate([rng.normal(0, 1, (50, 3)), [[0, 0, 0], [1e-9, 0, 0]], Rotation.random(5, 3).as_rotvec()])
    aa[-1] = [np.pi - 1e-4, 0, 0]
    np.testing.assert_allclose(rodrigues(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(rodrigues(log_rotation(rodrigues(aa))), rodrigues(aa), atol=1e-9)
    # J_r: exp(a + d) = exp(a) exp(J_r d) to first order
    d = rng.normal(0, 1e-6, (len(aa), 3))
    lhs = rodrigues(aa + d)
    rhs = rodrigues(aa) @ rodrigues(np.einsum("bij,bj->bi", right_jacobian(aa), d))
    np.testing.assert_allclose(lhs, rhs, atol=1e-11)


@pytest.mark.parametrize("kind", ["default", "mano"])
def test_the_numba_kernel_equals_the_numpy_functions(tmp_path, kind):
    """The fit's kernel (keypoints, both landmark sets, both Jacobians, local rotations) is the numpy
    reference above (itself checked against the hand layer and central differences)."""
    from handssca.fit import kernel
    from handssca.fit.keypoints import offset_jacobian, offset_points

    if not kernel.available():
        pytest.skip("numba is not importable")
    hand = _hands(tmp_path)[kind]
    km = KeypointModel.from_hand(hand)
    rng = np.random.default_rng(4)
    pose, betas, transl = _random_params(rng, 3)
    off3, off2 = rng.normal(0, 0.01, (21, 3)), rng.normal(0, 0.01, (21, 3))
    kp, L3, L2, local, (J3, J2) = kernel.evaluate(km, pose, betas, transl, off3, off2, True)
    posed = pose_keypoints(km, pose, betas, transl)
    Jk = keypoint_jacobian(km, pose, posed)
    np.testing.assert_allclose(kp, posed.keypoints, atol=1e-12)
    np.testing.assert_allclose(L3, posed.keypoints + offset_points(posed, off3), atol=1e-12)
    np.testing.assert_allclose(L2, posed.keypoints + offset_points(posed, off2), atol=1e-12)
    np.testing.assert_allclose(local, posed.local, atol=1e-12)
    for J, off in ((J3, off3), (J2, off2)):
        ref = Jk.copy()
        ref[..., :48] += offset_jacobian(km, pose, posed, off)
        np.testing.assert_allclose(J, ref, atol=1e-10)
