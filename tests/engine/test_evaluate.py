import numpy as np

from handssca.engine.evaluate import Predictions, compute_metrics


def _preds(valid_vertices):
    rng = np.random.default_rng(0)
    gj, gv = rng.normal(size=(3, 21, 3)), rng.normal(size=(3, 50, 3))
    pj, pv = gj + rng.normal(size=gj.shape) * 0.01, gv + rng.normal(size=gv.shape) * 0.01
    gt = {
        "joints_cam": gj,
        "vertices_cam": np.where(np.asarray(valid_vertices)[:, None, None] > 0, gv, 0.0),
        "valid_joints_cam": np.ones(3),
        "valid_vertices": np.asarray(valid_vertices, dtype=float),
    }
    return Predictions({"joints": pj, "vertices": pv}, gt)


def test_vertex_metrics_only_over_samples_with_gt_vertices():
    """DexYCB has no GT vertices (valid_vertices = 0): no PA-MPVPE or F-score from zero 'labels'."""
    m = compute_metrics(_preds([0, 0, 0]))
    assert "pa_mpjpe_mm" in m and not {"pa_mpvpe_mm", "f5", "f15"} & set(m)
    part, full = compute_metrics(_preds([1, 0, 1])), compute_metrics(_preds([1, 1, 1]))
    assert 5 < part["pa_mpvpe_mm"] < 30 and abs(part["pa_mpvpe_mm"] - full["pa_mpvpe_mm"]) < 5
    assert 0 < part["f5"] <= 1 and part["f15"] >= part["f5"]
