"""``handssca predict`` without a box: every hand found by the bundled detector, in images, folders and videos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handssca.cli import main
from handssca.detect.tracking import HandTracks, OneEuroFilter
from handssca.inference import HandReconstructor
from tests.detect.hand_images import render_right_hand

FILES = (".obj", ".ply", ".json", "_overlay.png", "_side.png")


def two_hands() -> np.ndarray:
    """256 x 512: a right hand on the left half, a left hand (a mirrored right hand) on the right half."""
    a, _ = render_right_hand(size=256, roll_deg=0.0)
    b, _ = render_right_hand(size=256, roll_deg=-30.0)
    return np.concatenate([a, np.ascontiguousarray(b[:, ::-1])], axis=1)


def predict(checkpoint, *args) -> int:
    return main(["predict", *map(str, args), "--checkpoint", str(checkpoint), "--no-progress"])


def test_every_hand_of_every_image_with_its_side(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(two_hands()).save(src / "pair.png")
    Image.fromarray(render_right_hand(size=300, roll_deg=45.0)[0]).save(src / "one.jpg", quality=92)
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(src / "wall.png")
    out = tmp_path / "out"
    assert predict(checkpoint, src, "--out", out) == 0
    text = capsys.readouterr().out
    assert "2 input(s) reconstructed (3 hand(s)), 1 without a hand, 0 skipped" in text, text
    assert f"no hand found in {src / 'wall.png'}" in text
    assert not list(out.glob("wall*"))  # nothing written for the image without a hand
    for stem in ("pair_hand1", "pair_hand2", "one_hand1"):
        for suffix in FILES:
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    assert (out / "pair_overlay.png").is_file() and (out / "one_overlay.png").is_file()
    first, second = (json.loads((out / f"pair_hand{k}.json").read_text()) for k in (1, 2))
    assert (first["hand_side"], second["hand_side"]) == ("right", "left")  # numbered left to right
    assert first["detection"]["hand_side"] == "right" and len(first["detection"]["keypoints_2d_px"]) == 21
    assert first["bbox_xywh"][0] + first["bbox_xywh"][2] < 300 and second["bbox_xywh"][0] > 200
    assert first["image_size_hw"] == [256, 512]
    # the reconstructed hand lies in its detected box: its 2D joints centre near the box's centre
    for info in (first, second):
        x, y, w, h = info["detection"]["bbox_xywh"]
        centre = np.mean(info["joints_2d_px"], axis=0)
        assert abs(centre[0] - (x + w / 2)) < w and abs(centre[1] - (y + h / 2)) < h
    with Image.open(out / "pair_overlay.png") as im:
        assert im.size == (512, 256)


def test_hand_overrides_the_detected_side_and_bbox_the_detection(checkpoint, tmp_path):
    Image.fromarray(two_hands()).save(tmp_path / "pair.png")
    assert predict(checkpoint, tmp_path / "pair.png", "--out", tmp_path / "o1", "--hand", "left") == 0
    sides = [json.loads((tmp_path / "o1" / f"pair_hand{k}.json").read_text())["hand_side"] for k in (1, 2)]
    assert sides == ["left", "left"]
    assert predict(checkpoint, tmp_path / "pair.png", "--out", tmp_path / "o2", "--bbox", "10,10,200,200") == 0
    info = json.loads((tmp_path / "o2" / "pair.json").read_text())  # one hand, the box given, right by default
    assert info["hand_side"] == "right" and "detection" not in info


def test_only_images_without_hands_is_exit_status_1_and_no_files(checkpoint, tmp_path, capsys):
    Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(tmp_path / "white.png")
    assert predict(checkpoint, tmp_path / "white.png", "--out", tmp_path / "o") == 1
    assert "no hand found in" in capsys.readouterr().out
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def obj_vertices(path: Path) -> np.ndarray:
    return np.array(
        [[float(v) for v in ln.split()[1:4]] for ln in path.read_text().splitlines() if ln.startswith("v ")]
    )


def hand_clip(n: int = 4) -> list[np.ndarray]:
    return [render_right_hand(size=192, roll_deg=4.0 * k, palm=True)[0] for k in range(n)]


def _one_euro(xs: list[np.ndarray], beta: float) -> list[np.ndarray]:
    """Casiez et al.'s 1-Euro filter written out here: freq 10 Hz (the GIF's 100 ms), cutoff 1 Hz,
    derivative cutoff 1 Hz, speed coefficient ``beta``."""

    def alpha(cutoff):
        return 1.0 / (1.0 + 10.0 / (2 * np.pi * cutoff))

    x_hat, dx_hat, out = xs[0], np.zeros_like(xs[0]), [xs[0]]
    for x in xs[1:]:
        dx_hat = alpha(1.0) * (x - x_hat) * 10.0 + (1 - alpha(1.0)) * dx_hat
        a = alpha(1.0 + beta * np.abs(dx_hat))
        x_hat = a * x + (1 - a) * x_hat
        out.append(x_hat)
    return out


@pytest.mark.parametrize("refine", ["none", "landmarks"])
def test_video_tracks_one_hand_and_smooths_it(checkpoint, tmp_path, refine):
    """``--smooth`` filters each tracked hand: the network's mesh vertex by vertex (``--refine none``); a
    hand fitted to its landmarks by its parameters (pose and shape at 1 /rad, translation at 20 /m), its
    mesh posed from them."""
    frames = [Image.fromarray(f) for f in hand_clip()]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    for name, extra in (("raw", ()), ("smooth", ("--smooth",))):
        args = ("--out", tmp_path / name, "--refine", refine, *extra)
        assert predict(checkpoint, tmp_path / "clip.gif", *args) == 0
        for k in range(4):
            info = json.loads((tmp_path / name / "clip" / f"frame_{k:05d}_hand1.json").read_text())
            assert info["track_id"] == 1 and info["hand_side"] == "right"
            assert ("smoothed" in info) == (name == "smooth")
            assert info["mesh_source"] == ("network" if refine == "none" else "landmark_fit")
        with Image.open(tmp_path / name / "clip_overlay.gif") as im:  # GIF in, GIF out
            assert im.n_frames == 4

    def read(name, what):
        out = []
        for k in range(4):
            stem = tmp_path / name / "clip" / f"frame_{k:05d}_hand1"
            if what == "vertices":
                out.append(obj_vertices(stem.with_suffix(".obj")))
            else:
                mano = json.loads(stem.with_suffix(".json").read_text())["mano"]
                out.append(np.array(mano["pose_axis_angle"] + mano["betas"] + mano["transl_m"]))
        return out

    if refine == "none":
        raw, smooth, expected = read("raw", "vertices"), read("smooth", "vertices"), None
        expected = _one_euro(raw, 20.0)
    else:
        raw, smooth = read("raw", "params"), read("smooth", "params")
        expected = [
            np.concatenate([a, b])
            for a, b in zip(_one_euro([r[:58] for r in raw], 1.0), _one_euro([r[58:] for r in raw], 20.0))
        ]
    for k in range(4):
        np.testing.assert_allclose(smooth[k], expected[k], atol=1e-5)
        if k:
            assert np.abs(smooth[k] - raw[k]).max() > 1e-4  # it did smooth


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_mp4_in_and_out_offline(checkpoint, tmp_path):
    """An mp4 (imageio-ffmpeg) is read and its overlay written as mp4, with the network switched off."""
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "clip.mp4", np.stack(hand_clip(3)), fps=10)
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "NO_PROXY": "*", "HF_HUB_OFFLINE": "1"}
    cmd = ["unshare", "-n", sys.executable, "-m", "handssca.cli", "predict", str(tmp_path / "clip.mp4")]
    cmd += ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 input(s) reconstructed (3 hand(s))" in r.stdout
    frames = iio.imread(tmp_path / "o" / "clip_overlay.mp4")
    assert frames.shape[0] == 3 and frames.shape[1:3] == (192, 192)


def test_reconstruct_all_returns_each_hand_with_its_detection(checkpoint):
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    hands = rec.reconstruct_all(two_hands())
    assert sorted(h.hand_side for h in hands) == ["left", "right"]
    for h in hands:
        assert h.vertices.shape[1] == 3 and h.joints_2d.shape == (21, 2)
        x, y, w, h_ = h.extras["detection"]["bbox_xywh"]
        cx, cy, side = h.bbox[0] + h.bbox[2] / 2, h.bbox[1] + h.bbox[3] / 2, h.bbox[2]
        assert abs(cx - (x + w / 2)) < 1e-6 and abs(cy - (y + h_ / 2)) < 1e-6  # the crop is the detected box's
        assert side == pytest.approx(1.5 * max(w, h_))  # expanded x1.5 and made square, as at training
        assert h.extras["detection"]["hand_side"] == h.hand_side
    assert rec.reconstruct_all(np.full((64, 64, 3), 30, np.uint8)) == []
    assert rec(two_hands()).hand_side == "right"  # the one-crop call still works (whole image)


# ---------------------------------------------------------------- tracking and smoothing


def test_hand_tracks_keep_ids_while_boxes_overlap():
    t = HandTracks()
    a, b = np.array([0.0, 0.0, 10.0, 10.0]), np.array([50.0, 0.0, 10.0, 10.0])
    assert t.update([a, b], ["right", "left"]) == [1, 2]
    assert t.update([b + [2, 0, 0, 0], a + [1, 1, 0, 0]], ["left", "right"]) == [2, 1]  # order does not matter
    assert t.update([a + [1, 1, 0, 0]], ["left"]) == [3]  # same place, other side: a new hand
    assert t.update([np.array([200.0, 0, 10, 10])], ["left"]) == [4]  # far away: a new hand


def test_one_euro_filter_closed_forms():
    f = OneEuroFilter(freq=30.0, min_cutoff=2.0, beta=0.0)
    assert f(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    tau = 1 / (2 * np.pi * 2.0)
    alpha = 1 / (1 + tau * 30.0)
    np.testing.assert_allclose(f(np.ones(3)), alpha)  # beta = 0: exponential smoothing with alpha(min_cutoff)
    np.testing.assert_allclose(f(np.ones(3)), alpha + (1 - alpha) * alpha)
    g = OneEuroFilter(freq=30.0, min_cutoff=2.0, beta=0.0)
    for _ in range(5):
        const = g(np.full(4, 0.7))
    np.testing.assert_allclose(const, 0.7)  # a constant passes unchanged
    slow, fast = OneEuroFilter(30.0, 1.0, 0.0), OneEuroFilter(30.0, 1.0, 5.0)
    ramp = [np.array([0.1 * k]) for k in range(10)]
    lag_slow = ramp[-1] - [slow(x) for x in ramp][-1]
    lag_fast = ramp[-1] - [fast(x) for x in ramp][-1]
    assert 0 < lag_fast[0] < lag_slow[0]  # speed raises the cutoff: less lag
    with pytest.raises(ValueError):
        OneEuroFilter(freq=0.0)


def test_package_data_holds_the_detector():
    from handssca.detect.detector import detector_file

    path = Path(detector_file())
    assert path.is_file() and path.stat().st_size < 8_000_000


def test_a_video_that_breaks_midway_keeps_what_was_written(checkpoint, tmp_path, capsys):
    """A GIF truncated after a few frames: those frames' files and their overlay video are written, the
    input is reported with the frame that could not be decoded, and a broken mp4 is one line."""
    frames = [Image.fromarray(f) for f in hand_clip(6)]
    frames[0].save(tmp_path / "full.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = (tmp_path / "full.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: int(len(data) * 0.6)])
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    out = tmp_path / "o"
    assert predict(checkpoint, tmp_path / "cut.gif", tmp_path / "bad.mp4", "--out", out) == 1
    text = capsys.readouterr().out
    cut_line = [ln for ln in text.splitlines() if "skipped" in ln and "cut.gif" in ln]
    assert len(cut_line) == 1 and "cannot be decoded" in cut_line[0], text
    k = int(cut_line[0].split("frame ")[1].split()[0])
    assert 1 <= k < 6
    assert sorted(p.name for p in (out / "cut").glob("*.json")) == [f"frame_{i:05d}_hand1.json" for i in range(k)]
    with Image.open(out / "cut_overlay.gif") as im:
        assert im.n_frames == k
    bad_line = [ln for ln in text.splitlines() if "bad.mp4" in ln]
    assert len(bad_line) == 1 and "cannot read video" in bad_line[0] and "ffmpeg version" not in text


def test_box_labels_stay_inside_the_picture():
    from handssca.pictures.draw import draw_boxes

    img = np.zeros((60, 80, 3), np.uint8)
    boxes = [(-10.0, -10.0, 40.0, 40.0), (70.0, 50.0, 30.0, 30.0)]  # over the top-left and bottom-right edges
    out = draw_boxes(img, boxes, ["1 right", "2 left"], [(40, 110, 230), (240, 140, 30)])
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    for colour, label in (((40, 110, 230), "1 right"), ((240, 140, 30), "2 left")):
        left, _, right, _ = measure.textbbox((0, 0), label)
        plate = np.all(out == colour, axis=-1)
        rows = plate.sum(axis=1)
        row = int(np.argmax(rows))  # the plate's fullest row: the whole label's width lies in the picture
        assert rows[row] >= right - left, (label, rows[row], right - left)


def test_a_video_without_a_hand_leaves_no_file(checkpoint, tmp_path, capsys):
    """The overlay mp4 is streamed as frames come: when no frame had a hand it is closed and removed."""
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    import imageio.v3 as iio

    frames = np.stack([np.full((64, 64, 3), 60 + 10 * k, np.uint8) for k in range(4)])
    iio.imwrite(tmp_path / "empty.mp4", frames, fps=10)
    assert predict(checkpoint, tmp_path / "empty.mp4", "--out", tmp_path / "o") == 1
    assert f"no hand found in {tmp_path / 'empty.mp4'}" in capsys.readouterr().out
    assert not (tmp_path / "o").exists() or not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]


def test_a_hand_that_cannot_be_reconstructed_does_not_lose_the_others(checkpoint, tmp_path, capsys, monkeypatch):
    """A detection with a degenerate box (no area): that hand is reported by its position and side, not as a
    --bbox the user never gave, and the image's other hand is written."""
    from handssca.detect import HandDetector
    from handssca.results import HandDetection

    real = HandDetector.__call__

    def with_a_broken_hand(self, image):
        hands = real(self, image)
        broken = HandDetection(np.array([10.0, 12.0, 0.0, 30.0]), 0.9, "left", np.zeros((21, 2)) + [10, 12])
        return hands[:1] + [broken]

    monkeypatch.setattr(HandDetector, "__call__", with_a_broken_hand)
    Image.fromarray(two_hands()).save(tmp_path / "pair.png")
    assert predict(checkpoint, tmp_path / "pair.png", "--out", tmp_path / "o") == 0
    text = capsys.readouterr().out
    assert (
        "1 input(s) reconstructed (1 hand(s)), 0 without a hand, 0 skipped, 6 files written, 1 detected hand(s) left out"
        in text
    )
    line = next(ln for ln in text.splitlines() if ln.startswith("  left out a hand of"))
    assert "left hand detected at x=10, y=12" in line and "no area" in line and "--bbox" not in line
    assert (tmp_path / "o" / "pair_hand1.obj").is_file() and not (tmp_path / "o" / "pair_hand2.obj").exists()
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="left hand detected at x=10"):
        rec.reconstruct_all(two_hands())


def test_a_tracked_hand_keeps_one_side_when_the_detector_wavers(checkpoint):
    """The detector decides the side frame by frame; along a track the side is that of the mean right-hand
    probability, so one hand keeps one number and one side (and its smoothing) through a video."""
    from handssca.results import HandDetection

    p_right = [0.9, 0.4, 0.45, 0.8, 0.3]  # per frame: the detector says right, left, left, right, left

    class Wavering:
        def __init__(self):
            self.k = 0

        def _hand(self):
            p = p_right[self.k]
            self.k += 1
            side = "right" if p >= 0.5 else "left"
            kps = np.array([[60.0 + i, 50.0 + 2 * i] for i in range(21)])
            return HandDetection(np.array([60.0, 50.0, 20.0, 40.0]), 0.9, side, kps, side_score=max(p, 1 - p))

        def __call__(self, image):
            return [self._hand()]

        def track(self, image, previous, redetect=False):
            return [self._hand()]

    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    rec._detector = Wavering()
    frames = [np.full((128, 128, 3), 100, np.uint8)] * len(p_right)
    out = list(rec.track_video(frames, 10.0))
    assert [f.ids for f in out] == [[1]] * 5
    means = np.cumsum(p_right) / np.arange(1, 6)  # 0.9, 0.65, 0.58, 0.64, 0.57: right all along
    assert [f.hands[0].hand_side for f in out] == ["right" if m >= 0.5 else "left" for m in means]
    assert {f.hands[0].hand_side for f in out} == {"right"}


def test_a_small_hand_in_a_large_photo_is_cropped_at_full_resolution(checkpoint, tmp_path):
    """A photo over the working size is detected on its reduced copy; a hand too small to fill the network's
    input from that copy is cropped from the file decoded again for its box, exactly as with that box given."""
    hand, _ = render_right_hand(size=256)
    photo = np.full((1200, 1600, 3), 140, np.uint8)
    photo[400:656, 600:856] = hand
    Image.fromarray(photo).save(tmp_path / "big.png")
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    rec.max_working_side = 400  # the "large photo": decoded at 1/4 for the detector
    scaled, (det,) = rec.detect(tmp_path / "big.png")
    assert scaled.scale_xy == (4.0, 4.0)
    (pred,) = rec.reconstruct_all(tmp_path / "big.png", refine=None)  # the network's own mesh: the crop decides it
    need = rec.working_scale(1600, 1200, det.bbox)  # ~1.8: what the network's 128 px input needs
    assert pred.extras["working_scale"] == pytest.approx(need, rel=0.02) and need < 2.0
    assert pred.image_size == (1200, 1600)
    given = rec(tmp_path / "big.png", bbox=det.bbox, refine=None)  # the same hand, its box given by the user
    np.testing.assert_allclose(pred.vertices, given.vertices, atol=1e-9)
    np.testing.assert_allclose(pred.joints_2d, given.joints_2d, atol=1e-6)
