import json
import time
import types

import numpy as np
import pytest
import torch
from PIL import Image

from handssca.cli import main
from handssca.data.synthetic import SyntheticHands
from handssca.frames import project, whole_image_box
from handssca.geometry import solve_translation
from handssca.inference import HandReconstructor
from handssca.model import build_model
from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

trimesh = pytest.importorskip("trimesh")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A ResNet-18 HandSSCA at 128 trained for a few steps on synthetic data."""
    from handssca.config import load_config
    from handssca.data.factory import build_dataset
    from handssca.data.loader import make_loader
    from handssca.losses import compute_losses

    torch.manual_seed(0)
    cfg = load_config(
        None, ["model.input_size=128", "model.backbone=resnet18", "data.train_size=4", "model.init=mean_pose"]
    )
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    batch = next(iter(make_loader(build_dataset(cfg, "train", train=True), 4)))
    for _ in range(2):
        loss = compute_losses(model(batch["image"]), batch, model.hand, cfg.train.loss_weights)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", checkpoint_dict(model.eval()))


@pytest.fixture(scope="module")
def scene():
    ds = SyntheticHands("test", 2, seed=11, image_size=128)
    return ds.render_original(1)


def test_solved_translation_reprojects_within_a_pixel(scene):
    joints_cam, K = scene["joints_cam"], scene["K"]
    px = project(joints_cam, K)
    local = joints_cam - scene["transl"]  # the MANO-frame joints the network predicts
    t = solve_translation(local, px, K)
    np.testing.assert_allclose(t, scene["transl"], atol=1e-6)
    assert np.abs(project(local + t, K) - px).max() < 1.0
    noisy = px + np.random.default_rng(0).normal(0, 2.0, px.shape)
    t2 = solve_translation(local, noisy, K)
    assert np.linalg.norm(t2 - scene["transl"]) < 0.01


class PerfectRunner:
    """Returns the ground truth of one scene for any crop: checks the reconstructor's geometry."""

    hand_model = None

    def __init__(self, scene, hand, size, crop_fn):
        self.scene, self.hand, self.size, self.crop_fn = scene, hand, size, crop_fn
        self.input_size, self.faces = size, hand.faces

    def __call__(self, crops):
        s = self.scene
        local_j = s["joints_cam"] - s["transl"]
        uv = self.crop_fn(project(s["joints_cam"], s["K"]))
        return {
            "vertices": (s["vertices_cam"] - s["transl"])[None],
            "joints": local_j[None],
            "joints_img": ((uv + 0.5) / self.size)[None],
            "pose_aa": s["pose"][None],
            "betas": s["betas"][None],
        }


def test_reconstructor_geometry_with_known_K(scene):
    from handssca.data.transforms import apply_affine, crop_affine, square_bbox
    from handssca.hand import HandModel

    hand = HandModel.default()
    img = (scene["image"] * 255).astype(np.uint8)
    h, w = img.shape[:2]
    box = square_bbox(whole_image_box(w, h))  # the reconstructor's box without a given one
    M = crop_affine(box, 128)
    rec = HandReconstructor(PerfectRunner(scene, hand, 128, lambda p: apply_affine(p, M)), hand.faces, 128)
    pred = rec(img, K=scene["K"])
    assert not pred.K_assumed
    np.testing.assert_allclose(pred.joints, scene["joints_cam"], atol=1e-5)
    assert np.abs(pred.joints_2d - project(scene["joints_cam"], scene["K"])).max() < 1.0


def test_left_hand_is_the_mirror_of_the_right(tiny_checkpoint, scene):
    rec = HandReconstructor.from_checkpoint(tiny_checkpoint, device="cpu")
    img = (scene["image"] * 255).astype(np.uint8)
    right = rec(img, hand_side="right")
    left = rec(np.ascontiguousarray(img[:, ::-1]), hand_side="left")
    m = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left.vertices, right.vertices * m, atol=2e-4)
    np.testing.assert_array_equal(left.faces, right.faces[:, [0, 2, 1]])
    np.testing.assert_allclose(left.joints_2d[:, 0], img.shape[1] - 1 - right.joints_2d[:, 0], atol=0.05)


def test_predict_writes_every_file_and_survives_bad_inputs(tiny_checkpoint, scene, tmp_path, capsys):
    rgb = (scene["image"] * 255).astype(np.uint8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(rgb).save(inputs / "a_rgb.png")
    Image.fromarray(rgb[..., 0]).save(inputs / "b_gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(inputs / "c_rgba.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(inputs / "d_16bit.png")
    (inputs / "e_empty.png").write_bytes(b"")
    (inputs / "f_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    frames = [Image.fromarray(rgb), Image.fromarray(rgb[:, ::-1].copy())]
    frames[0].save(inputs / "g_clip.gif", save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(inputs),
            "--checkpoint",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--no-progress",
            "--bbox",
            "20,20,150,150",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert (
        "5 input(s) reconstructed (6 hand(s)), 0 without a hand, 2 skipped" in text
        and "e_empty.png: " in text
        and "f_corrupt.jpg" in text
    )
    nv = build_model({"input_size": 128, "backbone": "resnet18"}).hand.num_vertices
    for stem in ("a_rgb", "b_gray", "c_rgba", "d_16bit"):
        for suffix in (".obj", ".ply", ".json", "_overlay.png", "_side.png"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
        for ext in ("obj", "ply"):
            mesh = trimesh.load(out / f"{stem}.{ext}", process=False)
            assert mesh.vertices.shape == (nv, 3) and len(mesh.faces) > 0
        info = json.loads((out / f"{stem}.json").read_text())
        assert info["K_assumed"] is True and len(info["joints_2d_px"]) == 21 and info["bbox_xywh"][2] == 225
    assert (out / "g_clip_overlay.gif").is_file() and (out / "g_clip" / "frame_00001.obj").is_file()


@pytest.mark.parametrize("size", [224, 256])
def test_onnx_matches_pytorch(tmp_path, size):
    pytest.importorskip("onnxruntime")
    from handssca.export import OnnxRunner, export_model
    from handssca.model import load_model
    from handssca.model.runner import TorchRunner

    torch.manual_seed(size)
    model = build_model({"input_size": size, "backbone": "resnet18"}).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", checkpoint_dict(model))
    onnx_path = export_model(ckpt, tmp_path / "m.onnx")
    x = np.random.default_rng(size).random((2, 3, size, size), dtype=np.float32)
    a = OnnxRunner(onnx_path)(x)
    b = TorchRunner(load_model(ckpt), torch.device("cpu"))(x)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-4, rtol=1e-4, err_msg=k)


def test_torchscript_export_runs(tmp_path, tiny_checkpoint):
    from handssca.export import export_model

    path = export_model(tiny_checkpoint, tmp_path / "m.pt", "torchscript")
    module = torch.jit.load(str(path))
    x = torch.rand(1, 3, 128, 128)
    outs = module(x)
    from handssca.model import load_model

    ref = load_model(tiny_checkpoint)(x)
    torch.testing.assert_close(outs[0], ref["vertices"], atol=1e-4, rtol=1e-4)


def test_an_extras_key_never_replaces_a_core_field():
    from handssca.results import HandPrediction

    def prediction(extras):
        z = np.zeros
        return HandPrediction(
            z((5, 3)), z((21, 3)), z((21, 2)), z((2, 3), int), z(48), z(10), z(3), np.eye(3), True, z(4),
            "right", (10, 10), extras=extras,
        )  # fmt: skip

    info = prediction({"track_id": 3}).to_json()
    assert info["track_id"] == 3 and info["hand_side"] == "right"
    for key in ("hand_side", "K", "mano", "hand_model"):
        with pytest.raises(ValueError, match=f"'{key}'"):
            prediction({key: "left"}).to_json()


def test_the_detector_is_built_once_when_threads_ask_for_it_together(monkeypatch):
    import threading

    import handssca.detect

    built = []

    class SlowToBuild:
        def __init__(self, device=None):
            built.append(self)
            time.sleep(0.2)  # the window in which a second thread would build another one

    monkeypatch.setattr(handssca.detect, "HandDetector", SlowToBuild)
    runner = types.SimpleNamespace(input_size=128, faces=None, hand_model=None, hand=None)
    rec = HandReconstructor(runner=runner, faces=np.zeros((1, 3), int), input_size=128)
    got = []
    start = threading.Barrier(4)

    def ask():
        start.wait()
        got.append(rec.detector)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 4 and all(d is built[0] for d in got)


def test_from_checkpoint_runs_the_inference_copy_in_the_precision_asked(tiny_checkpoint):
    from handssca.model import load_model
    from handssca.model.inference_copy import InferenceNetwork

    x = np.random.default_rng(5).random((2, 3, 128, 128), dtype=np.float32)
    with torch.no_grad():
        ref = load_model(tiny_checkpoint)(torch.from_numpy(x))
    f32 = HandReconstructor.from_checkpoint(tiny_checkpoint, device="cpu", precision="float32")
    assert isinstance(f32.runner.model, InferenceNetwork) and f32.runner.model.dtype == torch.float32
    out = f32.runner(x)
    for k in ("joints", "joints_img", "pose_aa", "betas"):
        np.testing.assert_allclose(out[k], ref[k].numpy(), atol=1e-4, rtol=1e-4, err_msg=k)
    bf16 = HandReconstructor.from_checkpoint(tiny_checkpoint, device="cpu", precision="bfloat16")
    assert bf16.runner.model.dtype == torch.bfloat16
    out = bf16.runner(x)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values())
    assert np.abs(out["joints_img"] - ref["joints_img"].numpy()).max() < 0.02  # of the crop
    with pytest.raises(ValueError, match="precision: expected one of auto, float32, bfloat16; got 'half'"):
        HandReconstructor.from_checkpoint(tiny_checkpoint, device="cpu", precision="half")


def test_predict_refuses_an_unknown_precision(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["predict", str(tmp_path / "x.png"), "--checkpoint", str(tiny_checkpoint), "--precision", "half"])
    assert e.value.code == 2 and "--precision" in capsys.readouterr().err


def test_predict_refuses_precision_with_an_onnx_model(tmp_path, capsys):
    code = main(["predict", str(tmp_path / "x.png"), "--onnx", str(tmp_path / "m.onnx"), "--precision", "float32"])
    err = capsys.readouterr().err
    assert code == 2 and "--precision: only with --checkpoint" in err and len(err.strip().splitlines()) == 1
