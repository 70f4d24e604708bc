"""``handssca serve`` without a browser: the work behind the button, the page's callback, and the one-line
error when gradio is missing (tests/test_serve_browser.py drives the page in Chromium)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from handssca.cli import main
from handssca.inference import HandReconstructor
from handssca.model import build_model
from handssca.model.checkpoint import checkpoint_dict, save_checkpoint
from handssca.serve import DETECT, NO_HAND, WHOLE, RequestFolders, reconstruct_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained ResNet-18 HandSSCA at 128 (the page only needs it to run)."""
    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18"}).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", checkpoint_dict(model))


@pytest.fixture(scope="module")
def rec(checkpoint):
    return HandReconstructor.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    y, x = np.mgrid[0:120, 0:160].astype(np.float32)
    img = np.stack([x / 160 * 255, y / 120 * 255, 128 + 100 * np.sin(x / 9 + y / 13)], -1)
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(path)
    return path


class WholeOnly:
    """A reconstructor that cannot detect hands (an older one, or one built without a detector)."""

    def __init__(self, rec):
        self.rec = rec

    def load(self, path):
        return self.rec.load(path)

    def __call__(self, image, **kw):
        return self.rec(image, **kw)


class Detecting(WholeOnly):
    """A reconstructor whose detector 'finds' the given boxes, each with its side."""

    def __init__(self, rec, boxes):
        super().__init__(rec)
        self.boxes = boxes

    def reconstruct_all(self, image, K=None, source=None):
        return [self.rec(image, bbox=box, hand_side=side, K=K) for box, side in self.boxes]


def test_import_needs_no_gradio():
    code = "import sys; sys.modules['gradio'] = None; import handssca.serve; print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True"]  # the blocker itself: nothing imported gradio


def test_serve_without_gradio_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--checkpoint", str(tmp_path / "absent.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("handssca serve: error:") and "pip install 'handssca[serve]'" in err
    with pytest.raises(SystemExit) as e:  # the help needs no gradio either
        main(["serve", "--help"])
    assert e.value.code == 0 and "--checkpoint" in capsys.readouterr().out


def test_whole_image_writes_meshes_json_pictures_and_the_view(rec, photo, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    r = reconstruct_image(rec, photo, WHOLE, "left", tmp_path)
    assert r.message == "whole image as one left hand"
    names = {f.name for f in r.files}
    assert {"overlay.png", "hand1_left.obj", "hand1_left.ply", "hand1_left.json", "hands_view.glb"} <= names
    assert all(f.parent == tmp_path and f.stat().st_size > 0 for f in r.files)
    info = json.loads((tmp_path / "hand1_left.json").read_text())
    assert r.info == {"hands": [info]} and info["hand_side"] == "left"
    assert np.asarray(info["joints_3d_m"]).shape == (21, 3) and np.asarray(info["joints_2d_px"]).shape == (21, 2)
    assert r.overlay.shape == (120, 160, 3) and r.overlay.dtype == np.uint8
    # the view: the same mesh turned y up (glTF) and centred, one material of the left hand's colour
    obj = trimesh.load(tmp_path / "hand1_left.obj", process=False)
    view = trimesh.load(r.viewer_mesh, force="mesh", process=False)
    expected = obj.vertices * [1, -1, -1]
    expected -= (expected.min(0) + expected.max(0)) / 2
    np.testing.assert_allclose(view.vertices, expected, atol=1e-5)
    np.testing.assert_array_equal(view.faces, obj.faces)


def test_detect_mode_no_hand_and_two_hands(rec, photo, tmp_path):
    none = reconstruct_image(Detecting(rec, []), photo, DETECT, out_dir=tmp_path / "none")
    assert none.message == NO_HAND and none.files == [] and none.overlay is None and none.info is None
    assert not (tmp_path / "none").exists()

    two = Detecting(rec, [((10, 20, 50, 50), "right"), ((90, 30, 50, 60), "left")])
    r = reconstruct_image(two, photo, DETECT, out_dir=tmp_path / "two")
    assert r.message == "2 hands found (right, left)"
    assert [h["hand_side"] for h in r.info["hands"]] == ["right", "left"]
    names = {f.name for f in r.files}
    assert {"hand1_right.json", "hand2_left.json", "hand1_right.obj", "hand2_left.obj"} <= names
    # both hands on one picture: it differs from each hand's own overlay where the other hand is drawn
    own = [
        np.asarray(Image.open(tmp_path / "two" / f"hand{i}_{s}_overlay.png")) for i, s in ((1, "right"), (2, "left"))
    ]
    both = np.asarray(Image.open(tmp_path / "two" / "overlay.png"))
    np.testing.assert_array_equal(both, r.overlay)
    assert all((both != o).any() for o in own)

    with pytest.raises(ValueError, match="cannot detect"):
        reconstruct_image(WholeOnly(rec), photo, DETECT, out_dir=tmp_path / "x")  # no reconstruct_all: said so
    with pytest.raises(ValueError, match="mode"):
        reconstruct_image(rec, photo, "guess", out_dir=tmp_path / "x")


def test_the_pages_callback_without_a_browser(rec, photo, tmp_path):
    gr = pytest.importorskip("gradio")
    from handssca.serve import build_app

    for r, modes in ((WholeOnly(rec), [WHOLE]), (Detecting(rec, []), [DETECT, WHOLE])):
        app = build_app(r, tmp_path / "requests")
        radio = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "mode")
        assert [c[0] for c in radio.choices] == modes and radio.value == modes[0]
    run = next(f.fn for f in app.fns.values() if f.api_name == "reconstruct")  # the button's function
    status, overlay, mesh, files, info = run(str(photo), WHOLE, "right")
    assert status == "**whole image as one right hand**" and overlay.shape == (120, 160, 3)
    assert mesh["value"].endswith("hands_view.glb") and any(f.endswith("hand1_right.json") for f in files)
    assert mesh["camera_position"][:2] == (90, 90) and 0.1 < mesh["camera_position"][2] < 2  # facing the hand
    assert len(info["hands"][0]["joints_3d_m"]) == 21
    assert run(str(photo), DETECT, "right") == (f"**{NO_HAND}**", None, None, None, None)
    with pytest.raises(gr.Error, match="drop an image"):
        run(None, WHOLE, "right")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(gr.Error, match="bad.png"):
        run(str(tmp_path / "bad.png"), WHOLE, "right")


def test_request_folders_are_fresh_and_old_ones_go(tmp_path):
    folders = RequestFolders(tmp_path / "root", keep_seconds=60)
    a, b = folders.new(), folders.new()
    assert a != b and a.is_dir() and b.is_dir()
    (a / "x.obj").write_text("v 0 0 0\n")
    old = time.time() - 120

    os.utime(a, (old, old))
    c = folders.new()
    assert not a.exists() and b.is_dir() and c.is_dir()


@pytest.fixture(scope="module")
def two_hands(tmp_path_factory):
    """A right hand and, mirrored beside it, a left hand: the bundled detector finds both."""
    from tests.detect.hand_images import render_right_hand

    right, _ = render_right_hand(size=256)
    left, _ = render_right_hand(size=256, roll_deg=-30.0)
    path = tmp_path_factory.mktemp("img") / "two_hands.png"
    Image.fromarray(np.concatenate([right, np.ascontiguousarray(left[:, ::-1])], axis=1)).save(path)
    return path


def test_detect_mode_with_the_bundled_detector(rec, photo, two_hands, tmp_path):
    if not hasattr(rec, "reconstruct_all"):
        pytest.skip("this HandReconstructor has no reconstruct_all")
    r = reconstruct_image(rec, photo, DETECT, out_dir=tmp_path / "none")  # colour ramps: no hand in them
    assert r.message == NO_HAND and r.files == []
    r = reconstruct_image(rec, two_hands, DETECT, out_dir=tmp_path / "two")
    assert r.message == "2 hands found (right, left)"  # numbered left to right
    assert [h["hand_side"] for h in r.info["hands"]] == ["right", "left"]
    assert r.info["hands"][0]["bbox_xywh"][0] < 256 <= r.info["hands"][1]["bbox_xywh"][0]
    assert all(len(h["joints_3d_m"]) == 21 and "detection" in h for h in r.info["hands"])
    assert r.overlay.shape == (256, 512, 3)


def test_a_port_in_use_is_one_line_and_exit_2(checkpoint, capsys):
    pytest.importorskip("gradio")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--checkpoint", str(checkpoint), "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def hand_gif(path, frames: int = 3):
    from tests.detect.hand_images import render_right_hand

    pics = [Image.fromarray(render_right_hand(size=192, roll_deg=5.0 * k)[0]) for k in range(frames)]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=100, loop=0)
    return path


def test_a_short_video_is_tracked_and_written_for_the_page(rec, tmp_path):
    from handssca.serve import reconstruct_video

    video = hand_gif(tmp_path / "clip.gif")
    result = reconstruct_video(rec, video, DETECT, out_dir=tmp_path / "o", max_frames=2)
    assert result.message == "hands found in 2 of 2 frames (1 tracked)"  # max_frames: the third is not read
    names = {f.name for f in result.files}
    assert {"overlay.gif", "hands_per_frame.json", "hands_view.glb"} <= names
    with Image.open(tmp_path / "o" / "overlay.gif") as im:
        assert im.n_frames == 2 and im.size == (192, 192)
    data = json.loads((tmp_path / "o" / "hands_per_frame.json").read_text())
    assert data["fps"] == pytest.approx(10.0)
    assert [fr["frame"] for fr in data["frames"]] == [0, 1]
    for fr in data["frames"]:
        (hand,) = fr["hands"]
        assert hand["track_id"] == 1 and hand["hand_side"] == "right" and len(hand["joints_3d_m"]) == 21
        assert "smoothed" in hand
    assert result.info["frames"][1]["hands"] == [(1, "right")]
    # a video without a hand: said, nothing offered; an unreadable one: a ValueError naming it
    blank = [Image.fromarray(np.full((64, 64, 3), v, np.uint8)) for v in (90, 110)]
    blank[0].save(tmp_path / "blank.gif", save_all=True, append_images=blank[1:], duration=100)
    empty = reconstruct_video(rec, tmp_path / "blank.gif", DETECT, out_dir=tmp_path / "b")
    assert empty.message == f"{NO_HAND} in 2 frames" and not empty.files
    (tmp_path / "bad.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(ValueError, match="bad.gif"):
        reconstruct_video(rec, tmp_path / "bad.gif", DETECT, out_dir=tmp_path / "c")
