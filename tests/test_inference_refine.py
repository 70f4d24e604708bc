"""Every photo's hands are refined by fitting the hand model to the detector's landmarks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from handssca.cli import main
from handssca.inference import HandReconstructor
from tests.detect.hand_images import render_right_hand


@pytest.fixture(scope="module")
def rec(checkpoint):
    return HandReconstructor.from_checkpoint(checkpoint, device="cpu", precision="float32")


def _f(size: int) -> np.ndarray:
    """The camera of ``render_right_hand`` (focal length 1.6 x the side, centred)."""
    return np.array([[1.6 * size, 0, (size - 1) / 2], [0, 1.6 * size, (size - 1) / 2], [0, 0, 1.0]])


@pytest.mark.parametrize("side", ["right", "left"])
def test_a_detected_hand_is_fitted_to_its_landmarks(rec, side):
    """The fitted mesh's joints land on the hand (a few pixels from the true joints; the untrained network's
    are tens of pixels off); a left hand (the mirrored picture) is fitted as the mirrored right hand. The
    picture is padded on one side, so that its camera's principal point is off centre (mirroring moves it)."""
    image, truth = render_right_hand(size=256, roll_deg=20.0, palm=True)
    image = np.pad(image, ((0, 0), (40, 0), (0, 0)), constant_values=140)  # 296 wide, cx 40 px right
    K = _f(256)
    K[0, 2] += 40
    truth = truth + [40.0, 0.0]
    if side == "left":
        image = np.ascontiguousarray(image[:, ::-1])
        truth = truth.copy()
        truth[:, 0] = 295 - truth[:, 0]
        K[0, 2] = 295 - K[0, 2]
    (fitted,) = rec.reconstruct_all(image, K=K)
    (network,) = rec.reconstruct_all(image, K=K, refine=None)
    assert fitted.hand_side == side
    assert fitted.extras["mesh_source"] == "landmark_fit" and network.extras["mesh_source"] == "network"
    fit = fitted.extras["landmark_fit"]
    assert fit["used"] and fit["reason"] is None and fit["residual_2d_px"] < fit["residual_2d_px_network"]
    err_fit = np.linalg.norm(fitted.joints_2d - truth, axis=1).mean()
    err_net = np.linalg.norm(network.joints_2d - truth, axis=1).mean()
    assert err_fit < 8.0 and err_net > 3 * err_fit, (err_fit, err_net)  # measured ~5 px against ~40 px
    # the mesh is the hand model posed by the reported parameters, in the camera frame
    assert np.isfinite(fitted.vertices).all() and fitted.vertices[:, 2].min() > 0.2
    data = fitted.to_json()
    json.dumps(data)
    assert data["mesh_source"] == "landmark_fit" and data["landmark_fit"]["iterations"] >= 1


def test_a_photo_decoded_at_a_reduced_working_resolution_is_fitted_in_its_own_pixels(checkpoint, tmp_path):
    """A picture over the working size is detected and fitted on its reduced copy: the fitted joints and the
    fit's residuals are in the original picture's pixels, on the hand."""
    from PIL import Image

    image, truth = render_right_hand(size=512, roll_deg=-10.0, palm=True)
    Image.fromarray(image).save(tmp_path / "big.png")
    small = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    small.max_working_side = 256  # decoded at half size
    (pred,) = small.reconstruct_all(tmp_path / "big.png", K=_f(512))
    assert pred.extras["working_scale"] > 1.0 and pred.image_size == (512, 512)
    assert pred.extras["mesh_source"] == "landmark_fit"
    err = np.linalg.norm(pred.joints_2d - truth, axis=1).mean()
    assert err < 16.0, err  # 512 px picture: twice the 8 px of the 256 px tests
    fit = pred.extras["landmark_fit"]
    kp = np.asarray(pred.extras["detection"]["keypoints_2d_px"])
    assert np.abs(kp - truth).mean() < 20.0  # the detection, in original pixels too
    assert fit["residual_2d_px"] < 0.03 * np.ptp(kp, axis=0).max()


def test_video_fits_are_pulled_towards_the_previous_frame(rec):
    """In a video each tracked hand's fit (after the first frame) is pulled towards its previous one."""
    frames = [render_right_hand(size=192, roll_deg=4.0 * k, palm=True)[0] for k in range(3)]
    got = list(rec.track_video(frames, fps=10.0))
    temporal = [f.hands[0].extras["landmark_fit"]["temporal"] for f in got]
    assert temporal == [False, True, True]
    assert all(f.hands[0].extras["mesh_source"] == "landmark_fit" for f in got)


def test_a_box_given_runs_the_landmark_network_on_it(rec):
    image, truth = render_right_hand(size=256, roll_deg=-30.0, palm=True)
    lo, hi = truth.min(0), truth.max(0)
    pred = rec(image, bbox=(*lo, *(hi - lo)), K=_f(256))
    assert pred.extras["mesh_source"] == "landmark_fit"
    assert np.linalg.norm(pred.joints_2d - truth, axis=1).mean() < 8.0
    blank = rec(np.full((256, 256, 3), 128, np.uint8), bbox=(60, 60, 100, 100))  # no hand in the box
    assert blank.extras["mesh_source"] == "network"
    assert "no landmarks" in blank.extras["landmark_fit"]["reason"]


def test_a_fit_far_from_its_landmarks_keeps_the_network_mesh_and_says_why(rec):
    """Landmarks that contradict each other (the 3D ones of another hand, turned and curled; 2D ones
    scattered) give no fit worth keeping: the network's mesh, the reason, finite numbers."""
    image, _ = render_right_hand(size=256, palm=True)
    scaled, (det,) = rec.detect(image)
    rng = np.random.default_rng(0)
    bad = dataclasses.replace(det, keypoints_2d=det.keypoints_2d + rng.normal(0, 40, (21, 2)))
    (pred,) = rec.reconstruct_all(scaled, detections=[bad])
    assert pred.extras["mesh_source"] == "network"
    assert "the network's mesh is kept" in pred.extras["landmark_fit"]["reason"]
    nan = dataclasses.replace(det, keypoints_3d=np.full((21, 3), np.nan))
    (pred,) = rec.reconstruct_all(scaled, detections=[nan])
    assert pred.extras["mesh_source"] == "network" and np.isfinite(pred.vertices).all()
    json.dumps(pred.to_json(), allow_nan=False)


def test_a_hand_whose_fit_is_rejected_is_fitted_as_the_other_side(checkpoint, monkeypatch):
    """A hand the detector gave one side whose fit on that side is rejected is fitted as the other side; that
    side's fit is used and the prediction says why (the detection's own side stays on record). Here the left
    side's fits are made to fail (a flat hand's mirror image can fit its landmarks too, so a real wrong-side
    detection is not always rejected). A side the user gives is kept as given; a rejected fit whose other
    side fails as well keeps the detected side."""
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu", precision="float32")
    image, truth = render_right_hand(size=256, roll_deg=10.0, palm=True)
    K = _f(256)
    scaled, (det,) = rec.detect(image)
    fit = rec._fit
    rejected = {"left"}

    def fit_failing_on(net, crop, *args):
        if ("left" if crop.flip else "right") in rejected:
            return (
                None,
                {"used": False, "reason": "made to fail; the network's mesh is kept", "residual_2d_px_network": 1.0},
                None,
            )
        return fit(net, crop, *args)

    monkeypatch.setattr(rec, "_fit", fit_failing_on)
    wrong = dataclasses.replace(det, hand_side="left")
    (pred,) = rec.reconstruct_all(scaled, K=K, detections=[wrong])
    assert pred.hand_side == "right" and pred.extras["mesh_source"] == "landmark_fit"
    check = pred.extras["side_check"]
    assert check["side"] == "right" and check["from"] == "landmark_fit" and check["detected"] == "left"
    assert check["reason"] == "the left side's fit was not used (made to fail; the network's mesh is kept)"
    assert check["residual_2d_px"]["left"] is None and 0 < check["residual_2d_px"]["right"] < 3.0
    assert np.linalg.norm(pred.joints_2d - truth, axis=1).mean() < 8.0
    assert pred.to_json()["detection"]["hand_side"] == "left"
    (forced,) = rec.reconstruct_all(scaled, K=K, detections=[wrong], hand_side="left")
    assert forced.hand_side == "left" and forced.extras["mesh_source"] == "network"
    assert "side_check" not in forced.extras
    (right,) = rec.reconstruct_all(scaled, K=K, detections=[det])  # its fit is used: no second fit
    assert right.extras["mesh_source"] == "landmark_fit" and "side_check" not in right.extras
    rejected.add("right")
    (both,) = rec.reconstruct_all(scaled, K=K, detections=[wrong])
    assert both.hand_side == "left" and both.extras["mesh_source"] == "network"
    assert both.extras["side_check"]["from"] == "detector" and both.extras["side_check"]["side"] == "left"
    assert both.extras["side_check"]["residual_2d_px"] == {"left": None, "right": None}
    rejected.discard("right")

    def other_side_fails(image, bbox, hand_side, **kw):
        if hand_side == "right":
            raise ValueError("its box lies outside the image\nsecond line")
        return call(image, bbox=bbox, hand_side=hand_side, **kw)

    call = rec.__call__
    monkeypatch.setattr(type(rec), "__call__", lambda self, *a, **kw: other_side_fails(*a, **kw))
    (kept,) = rec.reconstruct_all(scaled, K=K, detections=[wrong])  # the other side's error keeps the hand
    assert kept.hand_side == "left" and kept.extras["side_check"]["reason"] == (
        "the right side's fit was not used (its box lies outside the image)"
    )


def test_a_tracked_hand_keeps_its_voted_side_without_a_side_check(rec, monkeypatch):
    """In a video the track's vote decides a hand's side: no frame is fitted as the other side (which could
    flip the side from frame to frame), even where a photo's hand would be."""
    from handssca import inference

    monkeypatch.setattr(inference, "SIDE_CHECK_BELOW", 1.01)  # every detected hand is "unsure" now
    calls = []
    other = rec._other_side
    monkeypatch.setattr(rec, "_other_side", lambda *a: calls.append(1) or other(*a))
    frames = [render_right_hand(size=256, roll_deg=r, palm=True)[0] for r in (0.0, 5.0, 10.0)]
    tracked = [f for f in rec.track_video(frames, fps=10.0)]
    assert [len(f.hands) for f in tracked] == [1, 1, 1] and calls == []
    assert all(f.hands[0].extras["mesh_source"] == "landmark_fit" for f in tracked)
    (photo,) = rec.reconstruct_all(frames[0], K=_f(256))  # the same picture as a photo: checked
    assert calls == [1] and "side_check" in photo.extras


def test_an_uncertain_side_is_decided_by_the_fits(rec):
    """A right hand the detector calls left with probability 0.6 is fitted as both sides: the right side's fit
    ends nearer the keypoints (measured 0.60 against 0.83 px) and is taken; called left with 0.95 it is
    left as detected (one fit)."""
    image, truth = render_right_hand(size=256, roll_deg=10.0, palm=True)
    scaled, (det,) = rec.detect(image)
    unsure = dataclasses.replace(det, hand_side="left", side_score=0.6)
    (pred,) = rec.reconstruct_all(scaled, K=_f(256), detections=[unsure])
    assert pred.hand_side == "right" and pred.extras["mesh_source"] == "landmark_fit"
    check = pred.extras["side_check"]
    assert check["from"] == "landmark_fit" and check["side_score"] == 0.6
    assert check["reason"].startswith("the right side's fit ends nearer the keypoints")
    assert check["residual_2d_px"]["right"] < check["residual_2d_px"]["left"]
    assert np.linalg.norm(pred.joints_2d - truth, axis=1).mean() < 8.0
    sure = dataclasses.replace(det, hand_side="left", side_score=0.95)
    (kept,) = rec.reconstruct_all(scaled, K=_f(256), detections=[sure])
    assert kept.hand_side == "left" and "side_check" not in kept.extras


def test_predict_refines_by_default_and_says_so(checkpoint, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(render_right_hand(size=256, palm=True)[0]).save(tmp_path / "hand.png")
    args = ["predict", str(tmp_path / "hand.png"), "--checkpoint", str(checkpoint), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "1 hand(s) fitted to their landmarks" in capsys.readouterr().out
    info = json.loads((tmp_path / "a" / "hand_hand1.json").read_text())
    assert info["mesh_source"] == "landmark_fit" and info["detection"]["keypoints_3d_m"] is not None
    assert main([*args, "--out", str(tmp_path / "b"), "--refine", "none"]) == 0
    assert json.loads((tmp_path / "b" / "hand_hand1.json").read_text())["mesh_source"] == "network"
    with pytest.raises(SystemExit) as e:  # argparse's own one-line error
        main([*args, "--out", str(tmp_path / "c"), "--refine", "sideways"])
    assert e.value.code == 2 and "--refine" in capsys.readouterr().err
