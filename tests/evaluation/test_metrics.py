import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from handssca.evaluation import metrics as M


def random_hand(rng, n=4, k=21):
    return rng.normal(size=(n, k, 3)) * 0.05 + np.array([0.0, 0.0, 0.6])


def official_align_w_scale(gt, pred):
    """The official FreiHAND align_w_scale written with scipy, one sample at a time (test oracle)."""
    t1, t2 = gt.mean(0), pred.mean(0)
    g, p = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(g) + 1e-8, np.linalg.norm(p) + 1e-8
    r, s = orthogonal_procrustes(g / s1, p / s2)
    return (p / s2 @ r.T) * s * s1 + t1


def test_procrustes_matches_official_scipy_formula():
    rng = np.random.default_rng(0)
    gt, pred = random_hand(rng), random_hand(rng)
    ours = M.procrustes_align(gt, pred)
    ref = np.stack([official_align_w_scale(g, p) for g, p in zip(gt, pred)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_pure_similarity_transform_aligns_to_zero():
    rng = np.random.default_rng(1)
    gt = random_hand(rng)
    rot = Rotation.random(len(gt), random_state=2).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", rot, gt) + np.array([0.3, -0.2, 1.0])
    for allow in (True, False):
        err = M.point_errors(gt, M.procrustes_align(gt, pred, allow_reflection=allow))
        assert err.max() < 1e-7


def test_mirrored_hand_aligns_only_with_reflections_allowed():
    rng = np.random.default_rng(3)
    gt = random_hand(rng)
    pred = gt * np.array([-1.0, 1.0, 1.0])
    assert M.point_errors(gt, M.procrustes_align(gt, pred, allow_reflection=True)).max() < 1e-7
    assert M.point_errors(gt, M.procrustes_align(gt, pred, allow_reflection=False)).mean() > 1e-3


def test_reflection_free_is_optimal_among_rotations():
    # compare with a brute-force closed form: Umeyama on the same data via scipy Rotation.align_vectors
    rng = np.random.default_rng(4)
    gt, pred = random_hand(rng, n=1), random_hand(rng, n=1)
    ours = M.procrustes_align(gt, pred, allow_reflection=False)[0]
    g, p = gt[0] - gt[0].mean(0), pred[0] - pred[0].mean(0)
    rot, _ = Rotation.align_vectors(g, p)  # proper rotation minimising sum |g - R p|^2
    rp = rot.apply(p)
    scale = np.sum(g * rp) / np.sum(p * p)
    ref = scale * rp + gt[0].mean(0)
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_perfect_prediction_has_tiny_error_from_official_epsilons():
    rng = np.random.default_rng(5)
    gt = random_hand(rng)
    err = M.point_errors(gt, M.procrustes_align(gt, gt.copy()))
    assert err.max() < 1e-7


def test_scale_translation_alignment_closed_form():
    rng = np.random.default_rng(6)
    gt = random_hand(rng, n=2)
    pred = gt * 2.5 + 0.3
    out = M.scale_translation_align(gt, pred, root=0, ref=4)
    np.testing.assert_allclose(out, gt, atol=1e-12)
    zero = M.scale_translation_align(gt, np.zeros_like(gt))
    assert np.all(np.isfinite(zero))
    np.testing.assert_allclose(zero, np.broadcast_to(gt[:, :1], gt.shape))


def test_root_align():
    rng = np.random.default_rng(7)
    gt, pred = random_hand(rng), random_hand(rng)
    out = M.root_align(gt, pred)
    np.testing.assert_allclose(out[:, 0], gt[:, 0])
    np.testing.assert_allclose(out - out[:, :1], pred - pred[:, :1])


def test_pck_auc_against_explicit_loops():
    rng = np.random.default_rng(8)
    errors = rng.uniform(0, 0.07, size=(30, 5))
    meas = M.pck_measures(errors, 0.0, 0.05, 100)
    th = np.array([0.05 * i / 99 for i in range(100)])
    np.testing.assert_allclose(meas.thresholds, th)
    aucs, curves = [], []
    for k in range(5):
        pck = np.array([np.sum(errors[:, k] <= t) / 30 for t in th])
        area = sum((pck[i] + pck[i + 1]) / 2 * (th[i + 1] - th[i]) for i in range(99))
        aucs.append(area / 0.05)
        curves.append(pck)
    assert meas.auc == pytest.approx(np.mean(aucs), abs=1e-12)
    np.testing.assert_allclose(meas.pck_curve, np.mean(curves, axis=0))
    assert meas.epe_mean == pytest.approx(errors.mean())
    assert meas.epe_median == pytest.approx(np.mean([np.median(errors[:, k]) for k in range(5)]))


def test_pck_threshold_is_inclusive_and_zero_error_gives_auc_one():
    errors = np.full((1, 1), np.linspace(0.0, 0.05, 100)[3])  # exactly on the 4th threshold
    meas = M.pck_measures(errors)
    assert meas.pck_curve[3] == 1.0 and meas.pck_curve[2] == 0.0
    assert M.pck_measures(np.zeros((3, 2))).auc == pytest.approx(1.0)


def test_fscore_tiny_point_set_by_hand():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    pred = np.array([[0.0, 0.1, 0], [1.0, 0.3, 0]])
    # GT->pred nearest: 0.1, 0.3, ~1.04, ~2.02 ; pred->GT nearest: 0.1, 0.3
    f, p, r = M.fscore(gt, pred, 0.2)
    assert (p, r) == (0.25, 0.5)
    assert f == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    f, p, r = M.fscore(gt, pred, 0.3)  # strict: 0.3 is not < 0.3
    assert (p, r) == (0.25, 0.5)
    assert M.fscore(gt, pred + 10, 0.2)[0] == 0.0


def test_fscore_nearest_neighbours_match_scipy_cdist():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(9)
    gt, pred = rng.normal(size=(50, 3)) * 0.01, rng.normal(size=(40, 3)) * 0.01
    d = cdist(gt, pred)
    p_ref, r_ref = np.mean(d.min(1) < 0.005), np.mean(d.min(0) < 0.005)
    _, p, r = M.fscore(gt, pred, 0.005)
    assert (p, r) == (p_ref, r_ref)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        M.point_errors(np.zeros((2, 21, 3)), np.zeros((2, 20, 3)))


def test_similarity_from_points_reproduces_alignment():
    rng = np.random.default_rng(10)
    gt, pred = random_hand(rng), random_hand(rng)
    s, r, t = M.similarity_from_points(gt, pred)
    out = s[:, None, None] * pred @ np.swapaxes(r, 1, 2) + t[:, None]
    np.testing.assert_allclose(out, M.procrustes_align(gt, pred), atol=1e-12)
