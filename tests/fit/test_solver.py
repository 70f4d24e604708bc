"""The landmark fit closes the loop: landmarks made by posing a hand model are fitted back by that model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handssca.fit import FitInit, FitModel, FitWeights, LandmarkTable, fit_hand
from handssca.frames import mirror_intrinsics, mirror_points
from handssca.hand import HandModel
from tests.hand.mano_files import random_model_arrays, write_model

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
WIDTH = 640


def procrustes_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance (m) of points a (N, 3) to b after the best similarity (float64 reference)."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    U, S, Vt = np.linalg.svd(b0.T @ a0)
    d = np.sign(np.linalg.det(U @ Vt))
    R = U @ np.diag([1, 1, d]) @ Vt
    s = (S * [1, 1, d]).sum() / (a0**2).sum()
    return float(np.linalg.norm(s * a0 @ R.T - b0, axis=1).mean())


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    p = points @ K.T
    return p[..., :2] / p[..., 2:]


@pytest.fixture(scope="module")
def hands(tmp_path_factory):
    # a random MANO-format file; its pose space scaled to real hands' (captured MANO poses turn a joint by
    # well under 90 degrees; the helper's unscaled components give 300-degree turns)
    arrays = random_model_arrays(7)
    arrays["hands_components"] = arrays["hands_components"] * 0.15
    path, _ = write_model(tmp_path_factory.mktemp("mano"), "official", arrays=arrays)
    return {
        "default": HandModel.default(dtype=torch.float64),
        "mano": HandModel.from_file(path, dtype=torch.float64),
    }


def _own_keypoints() -> LandmarkTable:
    """The shipped table's weights without its offsets: landmarks that are the model's own keypoints."""
    t = LandmarkTable.shipped()
    return LandmarkTable(np.zeros((21, 3)), t.weights_2d, t.weights_3d, "own keypoints", np.zeros((21, 3)))


def _truth(hand: HandModel, n: int, seed: int):
    """n posed hands from the model's prior, any orientation, random shapes, 0.4-0.6 m in front of K."""
    rng = np.random.default_rng(seed)
    pose = np.zeros((n, 48))
    pose[:, 3:] = hand.sample_prior(n, rng) - hand.hands_mean.numpy()
    pose[:, :3] = Rotation.random(n, random_state=seed).as_rotvec()
    betas = np.clip(rng.normal(0, 1, (n, 10)), -2, 2)
    transl = np.array([0.04, -0.03, 0.5]) + rng.normal(0, [0.05, 0.05, 0.05], (n, 3))
    return _joints(hand, pose, betas, transl), pose, betas, transl


def _joints(hand: HandModel, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """(B, 21, 3) the hand layer's joints (the reference every fit is compared with)."""
    with torch.no_grad():
        out = hand(
            global_orient=torch.tensor(pose[:, :3]),
            hand_pose=torch.tensor(pose[:, 3:]),
            betas=torch.tensor(betas),
            transl=torch.tensor(transl),
        )
    return out["joints"].numpy()


@pytest.mark.parametrize("kind", ["default", "mano"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_landmarks_of_the_model_itself_are_recovered(hands, kind, side):
    """Exact landmarks (the model's own keypoints: 3D centred and scaled by 0.9, 2D through K) are fitted
    back to 1 mm after a similarity and 0.5 px, every hand. A left hand is the mirrored right model
    (as inference reconstructs it): its landmarks are mirrored in, the fit mirrored out."""
    right = hands[kind]
    fm = FitModel.from_hand(right, _own_keypoints())
    joints, *_ = _truth(right, 8, seed=1 if side == "right" else 2)
    if side == "left":
        joints = mirror_points(joints)  # the left hand's truth, in its own camera
    kp2d = project(joints, K)
    kp3d = (joints - joints.mean(1, keepdims=True)) * 0.9  # any origin and scale
    if side == "left":  # mirrored in: the picture flipped (u -> W - 1 - u), the 3D landmarks x -> -x
        Km = mirror_intrinsics(K, WIDTH)
        res = fit_hand(fm, project(mirror_points(joints), Km), Km, mirror_points(kp3d))
        fitted, landmarks = mirror_points(res.joints), mirror_points(res.landmarks_2d)
        px = np.linalg.norm(project(landmarks, K) - kp2d, axis=-1).mean(1)
    else:
        res = fit_hand(fm, kp2d, K, kp3d)
        fitted, px = res.joints, res.residual_2d_px
        np.testing.assert_allclose(px, np.linalg.norm(project(res.landmarks_2d, K) - kp2d, axis=-1).mean(1))
    errors = [procrustes_error(fitted[b], joints[b]) for b in range(len(joints))]
    assert max(errors) < 1e-3, errors  # measured 0.2-0.55 mm (the priors' pull)
    assert px.max() < 0.5, px  # measured 0.1-0.41 px
    assert np.isfinite(res.pose).all() and res.converged.mean() >= 0.5


@pytest.mark.parametrize("kind", ["default", "mano"])
def test_noisy_landmarks_fit_no_worse_than_their_noise(hands, kind):
    """With 5 mm of noise on each 3D landmark and on the points the 2D keypoints project, the fitted joints
    are nearer the truth than the noisy landmarks are (after a similarity; measured 4.7 vs 7.5 mm,
    default hand; 6.6 vs 7.4 mm, MANO-format file)."""
    hand = hands[kind]
    fm = FitModel.from_hand(hand, _own_keypoints())
    joints, *_ = _truth(hand, 16, seed=3)
    rng = np.random.default_rng(4)
    kp3d = joints - joints.mean(1, keepdims=True) + rng.normal(0, 0.005, joints.shape)
    kp2d = project(joints + rng.normal(0, 0.005, joints.shape), K)
    res = fit_hand(fm, kp2d, K, kp3d)
    fit = np.array([procrustes_error(res.joints[b], joints[b]) for b in range(16)])
    noise = np.array([procrustes_error(kp3d[b], joints[b]) for b in range(16)])
    assert fit.mean() < noise.mean() and np.median(fit / noise) < 1.0, (fit, noise)


def test_a_network_near_the_mean_pose_does_not_pull_the_fit_off(hands):
    """The default pull towards the network's pose is weak: a network that predicts the mean pose (what an
    untrained one does) leaves the fit on the landmarks; a strong pull moves it there."""
    hand = hands["default"]
    fm = FitModel.from_hand(hand, _own_keypoints())
    joints, pose, betas, transl = _truth(hand, 6, seed=5)
    kp2d, kp3d = project(joints, K), joints - joints.mean(1, keepdims=True)
    mean = FitInit(np.zeros((6, 48)), np.zeros((6, 10)), np.tile([0.0, 0.0, 0.5], (6, 1)))
    res = fit_hand(fm, kp2d, K, kp3d, init=mean)
    assert max(procrustes_error(res.joints[b], joints[b]) for b in range(6)) < 1e-3
    pulled = fit_hand(fm, kp2d, K, kp3d, init=mean, weights=FitWeights(network_m=0.05))
    assert np.mean([procrustes_error(pulled.joints[b], joints[b]) for b in range(6)]) > 3e-3


def test_two_dimensional_fit_from_the_network_and_the_temporal_pull(hands):
    """Without 3D landmarks the fit starts from ``init`` and fits the 2D keypoints; ``previous`` holds a fit
    near the previous frame's parameters when its weight is large."""
    hand = hands["default"]
    fm = FitModel.from_hand(hand, LandmarkTable.identity())
    joints, pose, betas, transl = _truth(hand, 4, seed=6)
    kp2d = project(joints, K)
    noisy = pose + np.random.default_rng(0).normal(0, 0.05, pose.shape)
    start = FitInit(noisy, betas, np.tile([0.04, -0.03, 0.5], (4, 1)))
    res = fit_hand(fm, kp2d, K, None, init=start)
    assert res.residual_2d_px.max() < 1.0 and (res.residual_2d_px < res.residual_2d_px_start).all()
    for kp3d in (None, joints - joints.mean(1, keepdims=True)):
        free = fit_hand(fm, kp2d, K, kp3d, init=start)
        held = fit_hand(fm, kp2d, K, kp3d, init=start, previous=start, weights=FitWeights(temporal_m=1.0))
        assert np.abs(held.pose - start.pose).max() < np.abs(free.pose - start.pose).max()


def test_degenerate_landmarks_give_finite_results(hands):
    """Landmarks all on one point, or NaN, never give a NaN: the hand is marked not converged."""
    fm = FitModel.from_hand(hands["default"], LandmarkTable.identity())
    kp3d = np.zeros((2, 21, 3))
    kp3d[1] = np.nan
    kp2d = np.full((2, 21, 2), 100.0)
    res = fit_hand(fm, kp2d, K, kp3d)
    for a in (res.pose, res.betas, res.transl, res.joints, res.residual_2d_px):
        assert np.isfinite(a).all()
    assert not res.converged[1] and list(res.valid) == [True, False]


def test_bad_shapes_are_named(hands):
    fm = FitModel.from_hand(hands["default"], LandmarkTable.identity())
    with pytest.raises(ValueError, match="keypoints_3d"):
        fit_hand(fm, np.zeros((1, 21, 2)), K, np.zeros((1, 20, 3)))
    with pytest.raises(ValueError, match="right hands"):
        FitModel.from_hand(HandModel.default(side="left"))


@pytest.mark.parametrize("use_kernel", [True, False])
@pytest.mark.parametrize("with_3d", [True, False])
def test_energy_jacobian_matches_central_differences(hands, with_3d, use_kernel):
    """The Jacobian of every term of the energy (3D under the similarity, 2D, priors, limits, the network and
    temporal pulls) is the derivative of its residuals (small 2D errors: inside the Huber threshold)."""
    from handssca.fit.solver import _Problem

    hand = hands["default"]
    fm = FitModel.from_hand(hand)  # the shipped table: offsets included
    joints, pose, betas, transl = _truth(hand, 2, seed=8)
    rng = np.random.default_rng(9)
    kp2d = project(joints, K) + rng.normal(0, 1.0, (2, 21, 2))
    kp3d = joints - joints.mean(1, keepdims=True) + rng.normal(0, 0.003, joints.shape) if with_3d else None
    other = FitInit(pose + 0.1, betas + 0.5, np.tile([0.0, 0.0, 0.45], (2, 1)))
    weights = FitWeights(network_m=0.01, temporal_m=0.01, robust_2d_m=1.0)  # quadratic: IRLS weights are constants
    prob = _Problem(fm, weights, kp2d, np.broadcast_to(K, (2, 3, 3)), kp3d, other, other, use_kernel=use_kernel)
    x = np.concatenate([pose + rng.normal(0, 0.05, pose.shape), betas, transl], 1)
    Q = np.stack([Rotation.from_rotvec(rng.normal(0, 0.1, 3)).as_matrix() for _ in range(2)]) if with_3d else None
    s = np.array([1.05, 0.95]) if with_3d else None
    ds = np.full(2, 0.5 / 500.0)
    r, _, J, _ = prob.evaluate(x, Q, s, ds, True)
    eps = 1e-6
    numeric = np.zeros_like(J)
    for p in range(prob.P):
        d = np.zeros((2, prob.P))
        d[:, p] = eps
        xp, Qp, lp = prob.step(x, Q, d)
        xm, Qm, lm = prob.step(x, Q, -d)
        rp = prob.evaluate(xp, Qp, None if s is None else s * np.exp(lp), ds, False)[0]
        rm = prob.evaluate(xm, Qm, None if s is None else s * np.exp(lm), ds, False)[0]
        numeric[..., p] = (rp - rm) / (2 * eps)
    np.testing.assert_allclose(J, numeric, atol=2e-6 * np.abs(J).max())


def test_a_rotation_and_its_other_representation_are_the_same_to_the_fit(hands):
    """theta about a and 2 pi - theta about -a are one global rotation: the temporal pull sees no difference
    between them, and the fit reports each rotation once (angle <= pi)."""
    from handssca.fit.keypoints import canonical_rotvec, nearest_rotvec, rodrigues

    hand = hands["default"]
    fm = FitModel.from_hand(hand, _own_keypoints())
    joints, pose, betas, transl = _truth(hand, 4, seed=11)
    axis = pose[:, :3] / np.linalg.norm(pose[:, :3], axis=1, keepdims=True)
    pose[:, :3] = axis * 3.0  # near pi: the representation the fit lands on depends on noise
    joints = _joints(hand, pose, betas, transl)
    kp2d, kp3d = project(joints, K), joints - joints.mean(1, keepdims=True)
    other = pose.copy()
    other[:, :3] = -axis * (2 * np.pi - 3.0)
    np.testing.assert_allclose(rodrigues(other[:, :3]), rodrigues(pose[:, :3]), atol=1e-12)
    weights = FitWeights(temporal_m=0.01)
    a = fit_hand(fm, kp2d, K, kp3d, previous=FitInit(pose, betas, transl), weights=weights)
    b = fit_hand(fm, kp2d, K, kp3d, previous=FitInit(other, betas, transl), weights=weights)
    np.testing.assert_allclose(a.joints, b.joints, atol=1e-6)
    assert max(procrustes_error(b.joints[i], joints[i]) for i in range(4)) < 1e-3
    assert (np.linalg.norm(a.pose[:, :3], axis=1) <= np.pi + 1e-12).all()
    np.testing.assert_allclose(canonical_rotvec(other[:, :3]), canonical_rotvec(pose[:, :3]), atol=1e-12)
    np.testing.assert_allclose(nearest_rotvec(pose[:, :3], other[:, :3]), other[:, :3], atol=1e-12)


def test_a_fit_far_from_its_keypoints_is_not_usable_and_says_so_in_the_pictures_pixels(hands):
    """Keypoints scattered far from any hand the model makes: not usable, and the reason's pixels are the
    original picture's when the fit ran at a reduced working resolution (``pixel_scale``)."""
    from handssca.fit import usable

    fm = FitModel.from_hand(hands["default"])
    joints, *_ = _truth(hands["default"], 1, seed=12)
    kp2d = project(joints, K) + np.random.default_rng(0).normal(0, 25.0, (1, 21, 2))
    res = fit_hand(fm, kp2d, K, joints - joints.mean(1, keepdims=True))
    ok, why = usable(res, kp2d)
    assert not ok[0] and f"{res.residual_2d_px[0]:.1f} px" in why[0]
    ok, why = usable(res, kp2d, pixel_scale=2.0)
    assert f"{2 * res.residual_2d_px[0]:.1f} px" in why[0]


def test_the_kernel_refuses_betas_of_another_count(hands):
    from handssca.fit import kernel

    if not kernel.available():
        pytest.skip("numba is not importable")
    km = FitModel.from_hand(hands["default"]).keypoints
    z = np.zeros((1, 21, 3))[0]
    with pytest.raises(ValueError, match="betas"):
        kernel.evaluate(km, np.zeros((1, 48)), np.zeros((1, 12)), np.zeros((1, 3)), z, z, False)


def test_numpys_blas_runs_on_one_thread_during_the_fit_only(hands, monkeypatch):
    """Left spinning after the fit's small products, BLAS worker threads slowed the network run next."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from handssca.fit import solver

    limits = threadpool_limits(2, user_api="blas")  # so that one thread inside the fit is the fit's doing

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    seen = []
    inner = solver._fit_hand
    monkeypatch.setattr(solver, "_fit_hand", lambda *a: seen.append(blas_threads()) or inner(*a))
    before = blas_threads()
    hand = hands["default"]
    joints, *_ = _truth(hand, 2, seed=7)
    res = solver.fit_hand(FitModel.from_hand(hand, _own_keypoints()), project(joints, K), K, joints)
    after = blas_threads()
    limits.restore_original_limits()
    assert res.converged.all()
    assert before and all(n == 2 for n in before)  # what the fit found
    assert seen and len(seen[0]) == len(before) and all(n == 1 for n in seen[0])  # inside it
    assert after == before  # and left as it found it
