"""``handssca predict`` on hostile and awkward inputs: decompression bombs, truncated files, huge photos,
same-stem pairs, bad boxes and garbage ONNX files (issue #15)."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handssca.cli import main
from handssca.data.transforms import square_bbox
from handssca.inference import HandReconstructor, default_intrinsics
from handssca.io.images import ImageReadError, read_image
from handssca.predict import run_predict


def picture(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth (well compressible) RGB picture with a few shapes."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.random.default_rng(seed)
    a, b = r.uniform(0.5, 2.0, 2)
    img = np.stack([x / w * 255, y / h * 255, 128 + 100 * np.sin(a * x / w * 6 + b * y / h * 6)], -1)
    return img.clip(0, 255).astype(np.uint8)


def png_bomb(path: Path, w: int = 15000, h: int = 15000) -> Path:
    """A valid PNG header declaring w x h pixels, followed by a few KB of (incomplete) image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (w + 1) * 8)  # 8 rows of a grayscale image
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )
    assert path.stat().st_size < 10_000
    return path


def test_decompression_bomb_is_refused_with_its_size(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ImageReadError) as e:
        read_image(bomb)
    msg = str(e.value)
    assert "bomb.png" in msg and "15000x15000" in msg and "100 megapixels" in msg, msg


def test_predict_folder_mixing_good_bad_and_same_stem_inputs(checkpoint, tmp_path, capsys):
    """The issue's acceptance test: every good result is written, every bad input is reported."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(picture(160, 120, 1)).save(src / "a.png")
    png_bomb(src / "b_bomb.png")
    Image.fromarray(picture(150, 130, 2)).save(src / "c.jpg", quality=90)
    full = (src / "c.jpg").read_bytes()
    (src / "d_truncated.jpg").write_bytes(full[: len(full) // 2])
    Image.fromarray(picture(140, 100, 3)).save(src / "e.png")
    full = (src / "e.png").read_bytes()
    (src / "f_truncated.png").write_bytes(full[: len(full) // 2])
    Image.fromarray(picture(120, 120, 4)).save(src / "x.png")
    Image.fromarray(picture(128, 96, 5)).save(src / "x.jpg", quality=90)
    (src / "y_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    args = ["predict", str(src), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress", "--whole-image"]
    code = main(args)
    text = capsys.readouterr().out
    assert code == 0, text
    on_disk = sorted(p for p in out.rglob("*") if p.is_file())
    assert f"5 input(s) reconstructed (5 hand(s)), 0 without a hand, 4 skipped, {len(on_disk)} files written" in text
    for bad in ("b_bomb.png", "d_truncated.jpg", "f_truncated.png", "y_corrupt.png"):
        assert f"skipped {src / bad}: {src / bad}:" in text, (bad, text)
    assert "megapixels" in text
    sources = {}
    for stem, w in (("a", 160), ("c", 150), ("e", 140), ("x_png", 120), ("x_jpg", 128)):
        for suffix in (".obj", ".ply", ".json", "_overlay.png", "_side.png"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
        info = json.loads((out / f"{stem}.json").read_text())
        assert info["image_size_hw"][1] == w
        sources[stem] = Path(info["input_file"]).name
    assert sources["x_png"] == "x.png" and sources["x_jpg"] == "x.jpg"
    assert len(on_disk) == 25


def test_same_stem_across_folders_and_a_video_keep_every_result(checkpoint, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "q").mkdir()
    Image.fromarray(picture(100, 80, 1)).save(tmp_path / "p" / "hand.png")
    Image.fromarray(picture(100, 80, 2)).save(tmp_path / "q" / "hand.png")
    frames = [Image.fromarray(picture(64, 64, k)) for k in range(2)]
    frames[0].save(tmp_path / "p" / "hand.gif", save_all=True, append_images=frames[1:], duration=100)
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    out = tmp_path / "out"
    summary = run_predict(rec, [str(tmp_path / "p"), str(tmp_path / "q")], out, progress=False, whole_image=True)
    assert len(summary.ok) == 3 and not summary.skipped
    on_disk = {p for p in out.rglob("*") if p.is_file()}
    assert set(summary.written) == on_disk and len(summary.written) == len(on_disk)
    inputs = sorted(json.loads(p.read_text())["input_file"] for p in out.glob("*.json"))
    assert inputs == sorted([str(tmp_path / "p" / "hand.png"), str(tmp_path / "q" / "hand.png")])
    assert any(p.suffix == ".gif" for p in on_disk)


class MarkerRunner:
    """A fake network that 'sees' the red disc in its crop: the 2D joints are a small hand centred on it."""

    faces = hand_model = hand = None

    def __init__(self, size: int):
        self.size = self.input_size = size
        g = np.random.default_rng(0)
        self.joints = np.c_[g.uniform(-0.04, 0.04, (21, 2)), g.uniform(-0.01, 0.01, 21)]
        self.joints -= self.joints.mean(0)
        self.crops = []

    def __call__(self, crops):
        c = crops[0]
        self.crops.append(c)
        red = (c[0] > 0.8) & (c[1] < 0.3) & (c[2] < 0.3)
        ys, xs = np.nonzero(red)
        centre = np.array([xs.mean(), ys.mean()])
        uv = centre + self.joints[:, :2] / 0.08 * 0.3 * self.size  # a spread of ~0.3 crop
        return {
            "vertices": self.joints[None],
            "joints": self.joints[None],
            "joints_img": ((uv + 0.5) / self.size)[None],
            "pose_aa": np.zeros((1, 48)),
            "betas": np.zeros((1, 10)),
        }


def disc_picture(w: int, h: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    img = picture(w, h)
    y, x = np.mgrid[0:h, 0:w]
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < radius**2
    img[inside] = (255, 0, 0)
    return img


def test_large_image_is_downscaled_and_outputs_stay_in_original_pixels(tmp_path):
    """A 6000x4500 JPEG read at 1/4 scale (JPEG draft) gives the same 2D results, in its own pixels, as the
    same picture given at 750x562."""
    W, H, s = 6000, 4500, 8
    centre, radius = (3100.0, 2050.0), 150.0
    big = tmp_path / "big.jpg"
    Image.fromarray(disc_picture(W, H, centre, radius)).save(big, quality=92)
    small_centre = ((centre[0] + 0.5) / s - 0.5, (centre[1] + 0.5) / s - 0.5)
    small = disc_picture(W // s, H // s, small_centre, radius / s)
    bbox = (2700.0, 1700.0, 800.0, 700.0)
    faces = np.zeros((1, 3), np.int64)
    rec_big = HandReconstructor(MarkerRunner(128), faces, 128, max_working_side=1024)
    pred_big = rec_big(big, bbox=bbox)
    assert pred_big.image_size == (H, W)
    np.testing.assert_allclose(pred_big.K, default_intrinsics(W, H))
    np.testing.assert_allclose(pred_big.bbox, square_bbox(np.array(bbox), expansion=1.5))
    assert pred_big.extras["working_scale"] > 4  # decoded well below full resolution
    rec_small = HandReconstructor(MarkerRunner(128), faces, 128)
    pred_small = rec_small(small, bbox=tuple(np.array(bbox) / s))
    crop_px = pred_big.bbox[2] / 128  # original pixels per crop pixel
    assert np.linalg.norm(pred_big.joints_2d.mean(0) - centre) < 1.5 * crop_px
    np.testing.assert_allclose(pred_big.joints_2d, (pred_small.joints_2d + 0.5) * s - 0.5, atol=1.5 * crop_px)
    np.testing.assert_allclose(pred_big.vertices, pred_small.vertices, rtol=0.05, atol=0.01)
    assert np.abs(rec_big.runner.crops[0] - rec_small.runner.crops[0]).mean() < 0.03  # the same picture in both crops


PEAK = """
import resource, sys
from handssca.cli import main
code = main(["predict", *sys.argv[3:], "--checkpoint", sys.argv[1], "--out", sys.argv[2], "--no-progress", "--whole-image"])
try:  # this process's own peak (ru_maxrss also counts the parent's memory at the fork on Linux)
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0]
    peak = int(hwm.split()[1]) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("PEAK_MB", peak, "CODE", code)
"""


def peak_mb(checkpoint, out: Path, *images: Path) -> float:
    cmd = [sys.executable, "-c", PEAK, str(checkpoint), str(out), *map(str, images)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("PEAK_MB")][-1]
    assert line.endswith("CODE 0"), r.stdout
    return float(line.split()[1])


def test_peak_memory_of_a_large_photo_stays_bounded(checkpoint, tmp_path):
    """Before: predict on a 6000x4500 JPEG peaked ~1.9 GB above the same run on a small image (23x the decoded
    image); the float copies and the overlay are now made at a bounded working resolution."""
    small, big_jpg, big_png = tmp_path / "small.jpg", tmp_path / "big.jpg", tmp_path / "big.png"
    Image.fromarray(picture(750, 562)).save(small, quality=85)
    pic = picture(6000, 4500)
    Image.fromarray(pic).save(big_jpg, quality=85)
    Image.fromarray(pic).save(big_png, compress_level=1)
    del pic
    base = peak_mb(checkpoint, tmp_path / "o1", small)
    large = peak_mb(checkpoint, tmp_path / "o2", big_jpg, big_png)
    decoded_mb = 6000 * 4500 * 3 / 2**20  # 77 MB
    assert large - base < 8 * decoded_mb, (base, large)  # before: ~1900 MB above, after: ~320
    for name in ("big_jpg", "big_png"):
        info = json.loads((tmp_path / "o2" / f"{name}.json").read_text())
        assert info["image_size_hw"] == [4500, 6000] and info["bbox_xywh"][2] == 6000


@pytest.mark.parametrize("box", ["nan,10,50,50", "10,10,inf,50", "10,10,0,50", "5000,5000,50,50", "-300,-300,100,100"])
def test_bad_bbox_is_one_line_and_exit_status_2(checkpoint, tmp_path, capsys, box):
    Image.fromarray(picture(160, 120)).save(tmp_path / "a.png")
    code = main(
        [
            "predict",
            str(tmp_path / "a.png"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
            f"--bbox={box}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "--bbox" in err, err
    if box.startswith(("5000", "-300")):
        assert "a.png" in err and "160x120" in err, err
    assert not (tmp_path / "o" / "a.obj").exists()


def test_bbox_outside_one_image_skips_only_that_one(checkpoint, tmp_path):
    Image.fromarray(picture(160, 120)).save(tmp_path / "small.png")
    Image.fromarray(picture(640, 480)).save(tmp_path / "large.png")
    rec = HandReconstructor.from_checkpoint(checkpoint, device="cpu")
    summary = run_predict(rec, [str(tmp_path)], tmp_path / "o", bbox=(300, 300, 80, 80), progress=False)
    assert summary.ok == [str(tmp_path / "large.png")]
    assert len(summary.skipped) == 1 and "small.png" in summary.skipped[0][1] and "--bbox" in summary.skipped[0][1]


def test_garbage_onnx_file_is_a_value_error_naming_it(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not an onnx model" * 10)
    with pytest.raises(ValueError, match="model.onnx"):
        HandReconstructor.from_onnx(bad)
    Image.fromarray(picture(64, 64)).save(tmp_path / "a.png")
    code = main(["predict", str(tmp_path / "a.png"), "--onnx", str(bad), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "model.onnx" in err, err


def test_summary_add_stays_linear_in_the_files_written():
    """A long video adds a few files per frame: each add must not look at every file written before."""
    from handssca.predict import PredictSummary

    hashed = [0]

    class CountingPath(type(Path())):
        def __hash__(self):
            hashed[0] += 1
            return super().__hash__()

    summary = PredictSummary()
    frames = 2000
    for k in range(frames):
        summary.add([CountingPath(f"clip/frame_{k:05d}_hand1.{ext}") for ext in ("obj", "ply", "json")])
    summary.add([CountingPath("clip/frame_00007_hand1.obj"), CountingPath("clip_overlay.mp4")])  # one again
    assert len(summary.written) == 3 * frames + 1 and summary.written[-1].name == "clip_overlay.mp4"
    assert len(set(summary.written)) == len(summary.written)
    hashed[0] = 0
    summary.add([CountingPath("last.json")])
    assert hashed[0] <= 2  # not one per file already written (6001 before the fix)


def test_summary_names_the_hands_whose_side_came_from_their_fit():
    from types import SimpleNamespace

    from handssca.predict import PredictSummary

    summary = PredictSummary()
    summary.ok.append("a.png")
    corrected = SimpleNamespace(
        hand_side="right",
        extras={
            "mesh_source": "landmark_fit",
            "landmark_fit": {"used": True, "reason": None},
            "side_check": {"side": "right", "from": "landmark_fit", "detected": "left", "reason": "nearer"},
        },
    )
    kept = SimpleNamespace(hand_side="left", extras={"mesh_source": "landmark_fit", "landmark_fit": {"used": True}})
    summary.count("a.png", [corrected, kept])
    text = summary.text()
    assert "2 hand(s) fitted to their landmarks" in text
    assert "a.png: the hand detected as left is given as a right hand: nearer" in text
    assert text.count("detected as") == 1
