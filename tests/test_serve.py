"""``handssca serve`` without a browser: the work behind the button, the page's callback, the one-line
error when gradio is missing, and the page as a service through its HTTP API (gradio_client, as the
browser talks to it): the package's own message for every upload, the same pixels as predict, nothing
left on disk, a password, an upload limit, one request at a time (tests/test_serve_browser.py drives the
page in Chromium)."""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handssca.cli import main
from handssca.inference import HandReconstructor
from handssca.reconstruct import Mode
from handssca.serve import DETECT, NO_HAND, WHOLE, RequestFolders, reconstruct_image


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


class Detecting:
    """A reconstructor whose detector 'finds' the given boxes, each with its side."""

    def __init__(self, rec, boxes):
        self.rec, self.boxes = rec, boxes

    def load(self, path, bbox=None):
        return self.rec.load(path, bbox)

    def __call__(self, image, **kw):
        return self.rec(image, **kw)

    def reconstruct_all(self, image, K=None, hand_side=None, source=None, errors=None):
        return [self.rec(image, bbox=box, hand_side=hand_side or side, K=K) for box, side in self.boxes]


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
    r = reconstruct_image(rec, photo, Mode.WHOLE, "left", tmp_path)
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
    none = reconstruct_image(Detecting(rec, []), photo, Mode.DETECT, out_dir=tmp_path / "none")
    assert none.message == NO_HAND and none.files == [] and none.overlay is None and none.info is None
    assert not (tmp_path / "none").exists()

    two = Detecting(rec, [((10, 20, 50, 50), "right"), ((90, 30, 50, 60), "left")])
    r = reconstruct_image(two, photo, Mode.DETECT, out_dir=tmp_path / "two")
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

    with pytest.raises(ValueError, match="mode"):
        reconstruct_image(rec, photo, "guess", out_dir=tmp_path / "x")


def test_the_pages_callback_without_a_browser(rec, photo, tmp_path):
    gr = pytest.importorskip("gradio")
    from handssca.serve import build_app

    app = build_app(Detecting(rec, []), tmp_path / "requests")
    radio = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "mode")
    assert [c[0] for c in radio.choices] == [DETECT, WHOLE] and radio.value == DETECT  # the page's labels
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
    (b / "x.obj").write_text("v 0 0 0\n")
    old = time.time() - 120
    for p in (a / "x.obj", a, b):  # b's file was written (or touched) lately: b stays
        os.utime(p, (old, old))
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
    r = reconstruct_image(rec, photo, Mode.DETECT, out_dir=tmp_path / "none")  # colour ramps: no hand in them
    assert r.message == NO_HAND and r.files == []
    r = reconstruct_image(rec, two_hands, Mode.DETECT, out_dir=tmp_path / "two")
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
    result = reconstruct_video(rec, video, Mode.DETECT, out_dir=tmp_path / "o", max_frames=2)
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
    empty = reconstruct_video(rec, tmp_path / "blank.gif", Mode.DETECT, out_dir=tmp_path / "b")
    assert empty.message == f"{NO_HAND} in 2 frames" and not empty.files
    (tmp_path / "bad.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(ValueError, match="bad.gif"):
        reconstruct_video(rec, tmp_path / "bad.gif", Mode.DETECT, out_dir=tmp_path / "c")


# --- the page as a service, through its HTTP API (gradio_client talks to it as the browser does) --------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_page(rec, users=None, max_upload_mb=None, keep_seconds=None, sweep_every=60.0):
    """The page on a free local port in this process, set up as ``serve`` sets it up: its own folder
    (gradio's cache in it), the page's work, the launch. Yields (url, folder)."""
    pytest.importorskip("gradio")
    from handssca.serve import KEEP_SECONDS, MAX_UPLOAD_MB, PageWork, ServerFolder, build_app, launch

    mb = MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb
    with ServerFolder(KEEP_SECONDS if keep_seconds is None else keep_seconds, sweep_every) as folder:
        work = PageWork(rec, folder.requests)
        port = free_port()
        app = launch(build_app(rec, work=work, max_upload_mb=mb), "127.0.0.1", port, users, mb)
        try:
            yield f"http://127.0.0.1:{port}/", folder
        finally:
            work.stop()
            app.close(verbose=False)
            work.wait()


def page_client(url: str, downloads, auth=None):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False, download_files=str(downloads), analytics_enabled=False)


@pytest.fixture(scope="module")
def page(rec, tmp_path_factory):
    """One page for the tests that only send requests: (url, client)."""
    with running_page(rec) as (url, _):
        yield url, page_client(url, tmp_path_factory.mktemp("downloads"))


def header_only_png(path, width: int, height: int):
    """A PNG whose header declares width x height (a decompression bomb's header; a few bytes of data)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def pictures_of_every_kind(folder) -> list[str]:
    """The same 128 x 96 picture as 8-bit RGB, 8- and 16-bit grey, RGBA (alpha varying), CMYK, palette,
    and turned by an EXIF orientation; the file names."""
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    rgb = np.stack([x / 128 * 255, y / 96 * 255, 128 + 100 * np.sin(x / 9 + y / 13)], -1).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    im.save(folder / "rgb8.png")
    im.convert("L").save(folder / "gray8.png")
    gray16 = (x / 128 * 0.6 + y / 96 * 0.35) * 65535  # a 16-bit grey whose pixels all exceed 255
    Image.fromarray(gray16.astype(np.uint16)).save(folder / "gray16.png")
    Image.fromarray(np.dstack([rgb, (x * 2).astype(np.uint8)]), "RGBA").save(folder / "rgba.png")
    im.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(folder / "palette.png")
    exif = im.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: 96 x 128 upright
    im.save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    return ["rgb8.png", "gray8.png", "gray16.png", "rgba.png", "cmyk.jpg", "palette.png", "exif_rotated.jpg"]


def test_unreadable_uploads_get_the_line_predict_gives(rec, page, tmp_path, monkeypatch):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from handssca.predict import run_predict

    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "x.png").write_text("a text file, not a picture\n")
    header_only_png(tmp_path / "huge.png", 30000, 30000)
    monkeypatch.chdir(tmp_path)  # predict is given the bare names, as the page knows its uploads
    summary = run_predict(rec, ["empty.png", "x.png", "huge.png"], tmp_path / "out", whole_image=True, progress=False)
    said = dict(summary.skipped)
    assert (
        "empty" in said["empty.png"] and "not a readable image" in said["x.png"] and "30000x30000" in said["huge.png"]
    )
    url, client = page
    for name, line in said.items():
        for mode in (WHOLE, DETECT):
            with pytest.raises(AppError) as e:
                client.predict(handle_file(str(tmp_path / name)), mode, "right", api_name="/reconstruct")
            assert str(e.value) == line  # predict's own line, naming the file as its sender knows it


def call_page(url: str, api_name: str, data: list, cookies=None) -> tuple[str, object]:
    """One request over gradio's plain HTTP API: (event, data) of its last event ('complete' or 'error')."""
    import httpx

    with httpx.Client(base_url=url, timeout=120, cookies=cookies) as h:
        r = h.post(f"gradio_api/call/{api_name}", json={"data": data})
        r.raise_for_status()
        text = h.get(f"gradio_api/call/{api_name}/{r.json()['event_id']}").text
    events = [block.split("\n") for block in text.strip().split("\n\n")]
    last = [ev for ev in events if ev[0] in ("event: complete", "event: error")][-1]
    return last[0].split(": ", 1)[1], json.loads(last[1].split(": ", 1)[1])


def test_a_900_byte_unicode_file_name_is_read(rec, page, tmp_path, monkeypatch):
    import httpx

    from handssca.predict import run_predict

    pictures_of_every_kind(tmp_path)
    name = "\u270b" * 300 + ".png"  # 900 bytes of UTF-8: no file system keeps such a name
    url, _ = page
    with httpx.Client(base_url=url, timeout=60) as h:  # uploaded as the browser uploads it, under that name
        r = h.post("gradio_api/upload", files={"files": (name, (tmp_path / "rgba.png").read_bytes(), "image/png")})
        r.raise_for_status()
    upload = {"path": r.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}
    event, data = call_page(url, "reconstruct", [upload, WHOLE, "right"])
    assert event == "complete", data
    assert data[0] == "**whole image as one right hand**"
    monkeypatch.chdir(tmp_path)
    run_predict(rec, ["rgba.png"], tmp_path / "out", whole_image=True, progress=False)
    shown, ours = data[4]["hands"][0], json.loads((tmp_path / "out" / "rgba.json").read_text())
    assert Path(shown["input_file"]).suffix == ".png" and shown["input_file"].startswith("\u270b" * 10)
    assert_same_hand({**shown, "input_file": "rgba.png"}, ours, "rgba.png")  # the same pixels as predict's


def test_the_page_works_on_the_pixels_predict_works_on(rec, page, tmp_path, monkeypatch):
    from gradio_client import handle_file

    from handssca.predict import run_predict

    names = pictures_of_every_kind(tmp_path)
    Image.new("RGB", (128, 96), "white").save(tmp_path / "white.png")  # what a 16-bit grey became
    monkeypatch.chdir(tmp_path)
    run_predict(rec, [*names, "white.png"], tmp_path / "out", whole_image=True, progress=False)
    predicted = {n: json.loads((tmp_path / "out" / f"{Path(n).stem}.json").read_text()) for n in [*names, "white.png"]}
    # the check can see a wrong picture: a white one gives other joints than the 16-bit grey
    assert (
        np.abs(np.subtract(predicted["gray16.png"]["joints_3d_m"], predicted["white.png"]["joints_3d_m"])).max() > 1e-4
    )
    url, client = page
    for name in names:
        status, overlay, _, _, info = client.predict(
            handle_file(str(tmp_path / name)), WHOLE, "right", api_name="/reconstruct"
        )
        assert status == "**whole image as one right hand**", name
        assert_same_hand(info["hands"][0], predicted[name], name)
        with Image.open(overlay) as im:  # the picture as it is meant to be seen, at its own size
            assert im.size[::-1] == tuple(predicted[name]["image_size_hw"]), name
    assert predicted["exif_rotated.jpg"]["image_size_hw"] == [128, 96]


def assert_same_hand(shown: dict, ours: dict, name: str) -> None:
    """The page's JSON of a hand is predict's for the same file: same picture size, box, camera, joints,
    MANO parameters (to float32 noise), the file named the same."""
    assert shown["input_file"] == ours["input_file"] == name
    assert shown["image_size_hw"] == ours["image_size_hw"], name
    for key in ("bbox_xywh", "K", "joints_2d_px", "joints_3d_m"):
        np.testing.assert_allclose(shown[key], ours[key], rtol=0, atol=1e-6, err_msg=f"{name}: {key}")
    for key in ("pose_axis_angle", "betas", "transl_m"):
        np.testing.assert_allclose(shown["mano"][key], ours["mano"][key], rtol=0, atol=1e-6, err_msg=f"{name}: {key}")


def files_under(folder) -> list:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


def holds_bytes_of(folder, picture) -> bool:
    """Whether a file under ``folder`` is ``picture`` byte for byte (an upload kept by gradio)."""
    data = Path(picture).read_bytes()
    return any(p.stat().st_size == len(data) and p.read_bytes() == data for p in files_under(folder))


def test_nothing_of_an_upload_stays_on_disk_after_sigterm(checkpoint, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    pictures = pictures_of_every_kind(tmp_path)
    video = hand_gif(tmp_path / "clip.gif", frames=2)
    (tmp_path / "users").write_text("# name:password\nana:correct horse\n")
    server_tmp = tmp_path / "server_tmp"
    server_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(server_tmp), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_TEMP_DIR", None)  # gradio's default cache: $TMPDIR/gradio
    port = free_port()
    cmd = [sys.executable, "-m", "handssca.cli", "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    cmd += ["--device", "cpu", "--auth-file", str(tmp_path / "users")]
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = wait_for_page(proc, port, tmp_path / "server.log")
        client = page_client(url, tmp_path / "downloads", auth=("ana", "correct horse"))
        for name in ["rgba.png", "cmyk.jpg", "gray16.png", "palette.png"]:  # once converted and kept by gradio
            assert client.predict(handle_file(str(tmp_path / name)), WHOLE, "right", api_name="/reconstruct")[0]
        with pytest.raises(AppError):
            client.predict(handle_file(str(tmp_path / "users")), WHOLE, "right", api_name="/reconstruct")
        r = client.predict(handle_file(str(video)), DETECT, "right", True, api_name="/reconstruct_video")
        assert r[0] == "**hands found in 2 of 2 frames (1 tracked)**"
        assert holds_bytes_of(server_tmp, tmp_path / "cmyk.jpg")  # the uploads were there while it ran
        assert holds_bytes_of(server_tmp, video) and len(pictures) == 7
        started = time.monotonic()
        proc.terminate()  # SIGTERM
        code = proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    text = (tmp_path / "server.log").read_text()
    assert code == 0 and "handssca serve: stopped" in text, text
    assert "warning" not in text  # 127.0.0.1 and a password: nothing to warn of
    assert files_under(server_tmp) == [] and list(server_tmp.iterdir()) == [], text  # not a file, not a folder
    assert took < 30


def wait_for_page(proc, port: int, log) -> str:
    import urllib.request

    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"handssca serve exited with {proc.returncode}: {Path(log).read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"handssca serve did not answer in 120 s: {Path(log).read_text()}")
        time.sleep(0.3)


def test_a_requests_files_go_after_the_hour(rec, photo, tmp_path):
    from gradio_client import handle_file

    from handssca.serve import KEEP_SECONDS

    other = tmp_path / "other.png"
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    with running_page(rec, sweep_every=0.2) as (url, folder):
        client = page_client(url, tmp_path / "downloads")
        client.predict(handle_file(str(photo)), WHOLE, "right", api_name="/reconstruct")
        assert holds_bytes_of(folder.gradio, photo)  # the upload, in gradio's cache in the server's folder
        (first,) = list(folder.requests.root.iterdir())
        hour_ago = time.time() - KEEP_SECONDS - 60
        for p in sorted(folder.root.rglob("*"), reverse=True):  # everything written so far, an hour old
            os.utime(p, (hour_ago, hour_ago))
        client.predict(handle_file(str(other)), WHOLE, "left", api_name="/reconstruct")
        deadline = time.monotonic() + 10
        while (first.exists() or holds_bytes_of(folder.gradio, photo)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not first.exists() and not holds_bytes_of(folder.gradio, photo)
        assert holds_bytes_of(folder.gradio, other) and len(list(folder.requests.root.iterdir())) == 1
        assert all(time.time() - p.stat().st_mtime < KEEP_SECONDS for p in files_under(folder.root))
    assert not folder.root.exists()


def test_a_password_guards_the_page_and_its_files(rec, photo, tmp_path):
    import httpx
    from gradio_client import handle_file

    with running_page(rec, users=[("ana", "pass:word")]) as (url, _):
        with pytest.raises(ValueError, match="credentials were not provided"):
            page_client(url, tmp_path)
        with pytest.raises(ValueError, match="Could not login"):
            page_client(url, tmp_path, auth=("ana", "pass"))
        client = page_client(url, tmp_path / "downloads", auth=("ana", "pass:word"))
        status, *_, files, _ = client.predict(handle_file(str(photo)), WHOLE, "right", api_name="/reconstruct")
        assert status == "**whole image as one right hand**"
        with httpx.Client(base_url=url, timeout=30) as h:  # without signing in: no upload, no call, no config
            assert (
                h.post("gradio_api/upload", files={"files": ("a.png", photo.read_bytes(), "image/png")}).status_code
                == 401
            )
            assert h.post("gradio_api/call/reconstruct", json={"data": [None, WHOLE, "right"]}).status_code == 401
            assert h.get("config").status_code == 401


def test_auth_flags_are_checked_and_an_open_address_is_warned_of(checkpoint, tmp_path, capsys):
    pytest.importorskip("gradio")
    import socket

    def serve(*flags):
        code = main(["serve", "--checkpoint", str(checkpoint), "--device", "cpu", *flags])
        return code, capsys.readouterr().err.strip().splitlines()

    code, err = serve("--auth", "ana")
    assert code == 2 and err == ["handssca serve: error: --auth: expected USER:PASSWORD, both non-empty"]
    (tmp_path / "users").write_text("ana:one\nbob secret-without-colon\n")
    code, err = serve("--auth-file", str(tmp_path / "users"))
    assert code == 2 and len(err) == 1 and f"{tmp_path / 'users'}: line 2: expected USER:PASSWORD" in err[0]
    assert "secret" not in err[0]  # a password is never repeated
    code, err = serve("--auth-file", str(tmp_path / "absent"))
    assert code == 2 and len(err) == 1 and "absent: cannot read the --auth-file" in err[0]
    code, err = serve("--max-upload-mb", "0")
    assert code == 2 and len(err) == 1 and "--max-upload-mb" in err[0]
    with socket.socket() as busy:  # the page cannot start here: the warning comes first, then one error line
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, err = serve("--host", "0.0.0.0", "--port", port)
        assert code == 2 and len(err) == 2 and "cannot listen on 0.0.0.0" in err[1]
        assert (
            err[0].startswith("handssca serve: warning: 0.0.0.0 is reachable from other machines")
            and "--auth" in err[0]
        )
        code, err = serve("--host", "0.0.0.0", "--port", port, "--auth", "ana:one")
        assert code == 2 and len(err) == 1 and "cannot listen" in err[0]  # with a password: no warning
        code, err = serve("--host", "localhost", "--port", port)
        assert not any("warning" in ln for ln in err)


def test_every_input_has_an_upload_limit_stated_on_the_page(rec, photo, tmp_path):
    import httpx
    from gradio_client import handle_file

    noise = tmp_path / "noise.png"  # ~120 kB: over a 0.05 MB limit
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(noise)
    assert noise.stat().st_size > 50_000 > photo.stat().st_size
    with running_page(rec, max_upload_mb=0.05) as (url, _):
        client = page_client(url, tmp_path / "downloads")
        with pytest.raises(ValueError, match="exceeds the maximum file size of 50000 bytes"):  # said before sending
            client.predict(handle_file(str(noise)), WHOLE, "right", api_name="/reconstruct")
        with httpx.Client(base_url=url, timeout=30) as h:  # and refused by the server when sent anyway
            r = h.post("gradio_api/upload", files={"files": ("noise.png", noise.read_bytes(), "image/png")})
            assert r.status_code == 413 and "50000 bytes" in r.text
            config = h.get("config").json()
        assert client.predict(handle_file(str(photo)), WHOLE, "right", api_name="/reconstruct")[0]
    assert config["max_file_size"] == 50_000
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    assert "up to 0.05 MB" in props["input-image"]["label"] and "up to 0.05 MB" in props["input-video"]["label"]
    assert "Files up to 0.05 MB each" in props["about"]["value"]


class Watched:
    """The reconstructor, recording how many requests use it at once (each step slowed a little, so two
    requests let run together would overlap)."""

    def __init__(self, rec, pause: float = 0.3):
        import threading

        self.rec, self.pause, self.now, self.most = rec, pause, 0, 0
        self._lock = threading.Lock()

    @contextmanager
    def using(self):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(self.pause)
            yield
        finally:
            with self._lock:
                self.now -= 1

    def load(self, path, bbox=None):
        with self.using():
            return self.rec.load(path, bbox)

    def __call__(self, image, **kw):
        with self.using():
            return self.rec(image, **kw)

    def reconstruct_all(self, image, **kw):
        with self.using():
            return self.rec.reconstruct_all(image, **kw)

    def track_video(self, frames, *args, **kw):
        it = self.rec.track_video(frames, *args, **kw)
        while True:
            with self.using():
                frame = next(it, None)
            if frame is None:
                return
            yield frame


def test_image_and_video_requests_queue_one_at_a_time_and_see_their_place(rec, photo, tmp_path):
    from gradio_client import handle_file

    watched = Watched(rec)
    video = hand_gif(tmp_path / "clip.gif", frames=4)
    with running_page(watched) as (url, _):
        first, second = (page_client(url, tmp_path / f"downloads{k}") for k in (1, 2))
        running = first.submit(handle_file(str(video)), WHOLE, "right", False, api_name="/reconstruct_video")
        while running.status().code.name != "PROCESSING":
            time.sleep(0.02)
        waiting = second.submit(handle_file(str(photo)), WHOLE, "left", api_name="/reconstruct")
        seen = []
        while not waiting.done():
            st = waiting.status()
            seen.append((st.code.name, st.rank, st.queue_size))
            time.sleep(0.02)
        assert running.result()[0] == "**4 frames, the whole image as one right hand**"
        assert waiting.result()[0] == "**whole image as one left hand**"
    assert watched.most == 1  # never an image and a video on the reconstructor at once
    assert ("IN_QUEUE", 0, 1) in seen  # the page is told: first in line, one waiting


class FoundHands:
    """A detector that finds the given hands in any picture."""

    def __init__(self, hands):
        self.hands = hands

    def __call__(self, image):
        import copy

        return copy.deepcopy(self.hands)


def test_a_degenerate_detection_is_left_out_and_said_the_other_hands_kept(rec, photo, tmp_path, monkeypatch):
    import re

    from gradio_client import handle_file

    from handssca.predict import run_predict
    from handssca.results import HandDetection

    def hand(box, side):
        x, y, w, h = box
        points = np.stack([np.linspace(x, x + w, 21), np.linspace(y, y + h, 21)], -1)
        return HandDetection(np.array(box, dtype=float), 0.9, side, points, side_score=0.9)

    found = FoundHands([hand((20, 20, 60, 60), "right"), hand((100, 40, 0, 0), "left")])  # the left one: no area
    detecting = HandReconstructor(rec.runner, rec.faces, rec.input_size, detector=found, device="cpu")
    monkeypatch.chdir(photo.parent)
    summary = run_predict(detecting, [photo.name], tmp_path / "out", progress=False)
    ((name, why),) = summary.hands_left_out
    assert name == photo.name and "left hand" in why and summary.hands == 1
    with running_page(detecting) as (url, _):
        client = page_client(url, tmp_path / "downloads")
        status, overlay, _, files, info = client.predict(
            handle_file(str(photo)), DETECT, "right", api_name="/reconstruct"
        )
    status = re.sub(r"\\(.)", r"\1", status)  # Markdown escapes of the plain text shown
    assert status == f"**1 hand found (right)**\n\nleft out: {why}"
    assert [h["hand_side"] for h in info["hands"]] == ["right"] and overlay


def process_facts(pid: int) -> dict:
    """Resident memory (MB), threads and open files of a Linux process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1])
    return {
        "rss_mb": rss_kb / 1024,
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "files": len(os.listdir(f"/proc/{pid}/fd")),
    }


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_soak_200_requests_memory_threads_and_files_stay_flat(checkpoint, photo, two_hands, tmp_path):
    """200 sequential requests (photos whole and detected, a 16-bit grey, a short video, an unreadable
    file) to ``handssca serve``: every answer the same as the first for its input, the server's memory
    after warm-up grows by at most 50 MB, its threads and open files stay where they were."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    pictures_of_every_kind(tmp_path)
    clip = hand_gif(tmp_path / "clip.gif", frames=3)
    (tmp_path / "x.png").write_text("not a picture")
    requests = [
        ("/reconstruct", photo, WHOLE, "right"),
        ("/reconstruct", two_hands, DETECT, "right"),
        ("/reconstruct", tmp_path / "gray16.png", WHOLE, "left"),
        ("/reconstruct_video", clip, DETECT, "right", True),
        ("/reconstruct", tmp_path / "x.png", WHOLE, "right"),
    ]
    server_tmp = tmp_path / "server_tmp"
    server_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(server_tmp), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GRADIO_TEMP_DIR", None)
    port = free_port()
    cmd = [sys.executable, "-m", "handssca.cli", "serve", "--checkpoint", str(checkpoint), "--port", str(port)]
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen([*cmd, "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
    first, facts = {}, []
    try:
        client = page_client(wait_for_page(proc, port, tmp_path / "server.log"), tmp_path / "downloads")
        client.download_files = False  # the answers' JSON is enough; the files stay on the server
        started = time.monotonic()
        for k in range(200):
            api_name, path, *args = requests[k % len(requests)]
            try:
                status, _, _, _, info = client.predict(handle_file(str(path)), *args, api_name=api_name)
                answer = (status, json.dumps(info, sort_keys=True))
            except AppError as e:
                answer = ("error", str(e))
            if k < len(requests):
                first[k] = answer
            else:  # the same input, the same answer (the same computation: to float noise)
                same = first[k % len(requests)]
                assert answer[0] == same[0], (k, answer[0], same[0])
                if answer[0] == "error":
                    assert answer[1] == same[1]
                else:
                    a, b = json.loads(answer[1]), json.loads(same[1])
                    np.testing.assert_allclose(flat_numbers(a), flat_numbers(b), rtol=0, atol=1e-6)
            if k in (49, 199):  # after warm-up (ten of each), at the end
                facts.append(process_facts(proc.pid))
        took = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    assert first[4][0] == "error" and first[4][1].startswith("x.png: not a readable image")
    assert first[1][0] == "**2 hands found (right, left)**" and "3 of 3 frames" in first[3][0]
    warm, end = facts
    print(f"soak: 200 requests in {took:.0f} s; after 50: {warm}; after 200: {end}")
    assert end["rss_mb"] - warm["rss_mb"] <= 50, (warm, end)
    assert end["threads"] <= warm["threads"] + 2 and end["files"] <= warm["files"] + 2, (warm, end)
    assert list(server_tmp.iterdir()) == []


def flat_numbers(value) -> list[float]:
    """Every number in a JSON value, in order (strings and names left out)."""
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in flat_numbers(value[k])]
    if isinstance(value, list | tuple):
        return [x for v in value for x in flat_numbers(v)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []
