"""The landmark table: its calibration recovers known offsets, and the shipped one is what the script gives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handssca.fit import KeypointModel, LandmarkTable, pose_keypoints
from handssca.fit.calibration import CalibrationSamples, calibrate_table
from handssca.fit.keypoints import KEYPOINT_BONE
from handssca.hand import HandModel

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "calibrate_landmarks.py"


def _script():
    spec = importlib.util.spec_from_file_location("calibrate_landmarks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_recovers_offsets_and_scatter_it_was_given():
    """Landmarks made from the model's keypoints plus known offsets on their bones (3D ones turned, shifted
    and scaled as a detector's; 2D ones another set, through K), with known scatter: the calibration finds
    the 2D offsets to 1 mm, the 3D ones to 2 mm up to a similarity (the 3D landmarks' own position, turn and
    scale are free: only their shape is calibrated), and the 2D weights (1 cm)^2 / variance within 15%."""
    hand = HandModel.default(dtype=torch.float64)
    km = KeypointModel.from_hand(hand)
    rng = np.random.default_rng(0)
    n = 400
    pose = np.zeros((n, 48))
    pose[:, 3:] = hand.sample_prior(n, rng) - hand.hands_mean.numpy()
    pose[:, :3] = Rotation.random(n, random_state=1).as_rotvec()
    betas = rng.normal(0, 1, (n, 10))
    transl = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.05, (n, 3))
    K = np.broadcast_to(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), (n, 3, 3)).copy()
    d3 = rng.normal(0, 0.008, (21, 3))
    d2 = d3 + rng.normal(0, 0.004, (21, 3))
    sigma3, sigma2 = rng.uniform(0.004, 0.012, 21), rng.uniform(0.002, 0.006, 21)
    posed = pose_keypoints(km, pose, betas, transl)
    W = posed.world[:, KEYPOINT_BONE]
    L3 = posed.keypoints + np.einsum("npij,pj->npi", W, d3) + rng.normal(0, 1, (n, 21, 3)) * sigma3[:, None]
    turn = Rotation.random(n, random_state=2).as_matrix()
    kp3d = 0.9 * np.einsum("nij,npj->npi", turn, L3 - L3.mean(1, keepdims=True))  # any pose and scale
    # the 2D scatter is sigma2 metres at the point's depth
    L2 = posed.keypoints + np.einsum("npij,pj->npi", W, d2)
    q = np.einsum("nij,npj->npi", K, L2)
    kp2d = q[..., :2] / q[..., 2:] + rng.normal(0, 1, (n, 21, 2)) * (sigma2[None] * 500 / L2[..., 2])[..., None]
    # keypoints_3d are in the image's axes as seen along the ray to the hand: undo the calibration's turn
    from handssca.fit.calibration import ray_rotation

    kp3d = np.einsum("nji,npj->npi", ray_rotation(K, kp2d), kp3d)
    table, stats = calibrate_table(km, CalibrationSamples(pose, betas, transl, K, kp2d, kp3d))
    assert stats["used"] >= 0.95 * n
    assert np.abs(table.offsets_2d - d2).max() < 1e-3
    from handssca.fit.calibration import similarity_align

    true3 = posed.keypoints + np.einsum("npij,pj->npi", W, d3)
    got3 = posed.keypoints + np.einsum("npij,pj->npi", W, table.offsets)
    assert np.linalg.norm(similarity_align(got3, true3) - true3, axis=-1).mean() < 2e-3  # noise: ~1 mm
    np.testing.assert_allclose(table.weights_2d, 0.01**2 / sigma2**2, rtol=0.15)
    # the 3D scatter is measured after each sample's similarity, which takes up part of it (most from the
    # noisiest landmarks, spread over the others): the weights come out up to ~1.6x, in the right order
    expected3 = 0.01**2 / sigma3**2
    np.testing.assert_allclose(table.weights_3d, expected3, rtol=0.7)
    assert np.corrcoef(table.weights_3d, expected3)[0, 1] > 0.9


def test_the_shipped_table_is_what_the_script_gives():
    """``scripts/calibrate_landmarks.py table`` on the shipped detections gives the shipped table."""
    script = _script()
    if not script.data_file(None).is_file():
        pytest.skip("scripts/data is not in this checkout")
    table, _ = script.make_table(None)
    shipped = LandmarkTable.shipped()
    written = json.loads((ROOT / "src/handssca/assets/landmark_table_default_hand.json").read_text())
    assert shipped.source == table.source == written["source"]
    np.testing.assert_allclose(shipped.offsets, table.offsets, atol=1e-6)
    np.testing.assert_allclose(shipped.offsets_2d, table.offsets_2d, atol=1e-6)
    np.testing.assert_allclose(shipped.weights_2d, table.weights_2d, rtol=1e-3)
    np.testing.assert_allclose(shipped.weights_3d, table.weights_3d, rtol=1e-3)


@pytest.mark.slow
def test_the_shipped_detections_are_the_renders_seen_by_the_detector():
    """Rendering and detecting the first shipped renders again gives their detections (within what GL and the
    numpy rasteriser differ by) and their truth exactly."""
    script = _script()
    with np.load(script.data_file(None)) as z:
        shipped = {k: z[k] for k in z.files if k != "settings"}
    found, _ = script.detect_renders(12)
    first = shipped["index"] < 12
    np.testing.assert_array_equal(found["index"], shipped["index"][first])
    for key in ("pose", "betas", "transl", "K", "joints_2d"):
        np.testing.assert_allclose(found[key], shipped[key][first], atol=1e-9)
    assert np.abs(found["keypoints_2d"] - shipped["keypoints_2d"][first]).mean() < 1.0
    assert np.abs(found["keypoints_3d"] - shipped["keypoints_3d"][first]).mean() < 0.002


def test_table_files_are_checked():
    with pytest.raises(ValueError, match="offsets_m"):
        LandmarkTable.from_json({"format": "handssca-landmark-table", "offsets_m": [[0, 0]]}, "t.json")
    with pytest.raises(ValueError, match="not a handssca landmark table"):
        LandmarkTable.from_json([], "t.json")
    t = LandmarkTable.shipped()
    again = LandmarkTable.from_json(json.loads(json.dumps(t.to_json())), "x")
    np.testing.assert_allclose(again.offsets_2d, t.offsets_2d, atol=1e-6)
