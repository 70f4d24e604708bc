"""The hand model travels with the checkpoint (issue 26, part 1): ``predict``, ``export`` and ``predict
--onnx`` run a network with the hand model it was trained with, or stop with one line (exit 2) naming
``--hand-model``; never the default hand driven by MANO parameters. Tiny networks and random MANO-format
files are made here; results are checked against the MANO layer run on the written parameters."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from handssca.cli import main
from handssca.hand import HandModel
from handssca.model import build_model
from handssca.model.checkpoint import checkpoint_dict, load_model, read_checkpoint, save_checkpoint
from tests.hand.mano_files import random_model_arrays, write_model

SIZE = 128


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A network trained (built) with a MANO file that has moved since, the same model as an npz
    elsewhere, another MANO model, a default-hand network, and a picture."""
    root = tmp_path_factory.mktemp("hand_model")
    for d in ("train", "moved", "copy", "other"):
        (root / d).mkdir()
    arrays = random_model_arrays(seed=5)
    trained_at, _ = write_model(root / "train", "official", arrays=arrays)
    copy, _ = write_model(root / "copy", "npz", arrays=arrays)  # the same model, another format and place
    other, _ = write_model(root / "other", "npz", seed=6)
    torch.manual_seed(0)
    mano_net = build_model({"input_size": SIZE, "backbone": "resnet18", "hand_model": str(trained_at)}).eval()
    mano_ckpt = save_checkpoint(root / "mano.pt", checkpoint_dict(mano_net))
    moved = shutil.move(str(trained_at), root / "moved" / "MANO_RIGHT.pkl")  # not at its recorded path any more
    default_ckpt = save_checkpoint(
        root / "default.pt", checkpoint_dict(build_model({"input_size": SIZE, "backbone": "resnet18"}).eval())
    )
    image = root / "in" / "hand.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (160, 200, 3), dtype=np.uint8)).save(image)
    return dict(
        root=root,
        trained_at=trained_at,
        moved=moved,
        copy=copy,
        other=other,
        mano_ckpt=mano_ckpt,
        default_ckpt=default_ckpt,
        image=image,
    )


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


def predict(capsys, s, out, *extra) -> tuple[int, str]:
    return run(capsys, "predict", s["image"], "--whole-image", "--no-progress", "--out", out, *extra)


def one_line(err: str, *words) -> None:
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert str(w) in err, (w, err)


def obj_vertices(path) -> np.ndarray:
    return np.array([[float(v) for v in ln.split()[1:]] for ln in path.read_text().splitlines() if ln.startswith("v ")])


def assert_drawn_by(out, stem: str, hand: HandModel) -> dict:
    """The written mesh is ``hand`` posed by the written parameters (float64 reference), and the JSON
    names that model."""
    info = json.loads((out / f"{stem}.json").read_text())
    mano = info["mano"]
    pose = torch.tensor(mano["pose_axis_angle"], dtype=torch.float64)[None]
    ref = hand.to(torch.float64)(
        global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=torch.tensor([mano["betas"]], dtype=torch.float64)
    )
    expected = ref["vertices"][0].numpy() + np.asarray(mano["transl_m"])
    got = obj_vertices(out / f"{stem}.obj")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert info["hand_model"]["sha256"] == hand.content_hash
    assert info["hand_model"]["default"] is hand.is_default
    return info


def test_predict_without_the_mano_file_names_hand_model(setup, capsys, tmp_path):
    code, err = predict(capsys, setup, tmp_path / "o", "--checkpoint", setup["mano_ckpt"])
    assert code == 2
    one_line(err, "--hand-model", "MANO_RIGHT.pkl", setup["mano_ckpt"])
    assert not (tmp_path / "o" / "hand.obj").exists()


def test_predict_with_another_model_names_both(setup, capsys, tmp_path):
    code, err = predict(
        capsys, setup, tmp_path / "o", "--checkpoint", setup["mano_ckpt"], "--hand-model", setup["other"]
    )
    assert code == 2
    one_line(err, "MANO_RIGHT.pkl", setup["other"], "--hand-model")
    # the default-hand network with a MANO file: the same error the other way round
    code, err = predict(
        capsys, setup, tmp_path / "o", "--checkpoint", setup["default_ckpt"], "--hand-model", setup["copy"]
    )
    assert code == 2
    one_line(err, "default hand", setup["copy"])


def test_predict_with_the_same_model_draws_it(setup, capsys, tmp_path):
    # the trained-with model under another name, format and folder: accepted by its content
    out = tmp_path / "o"
    code, err = predict(capsys, setup, out, "--checkpoint", setup["mano_ckpt"], "--hand-model", setup["copy"])
    assert code == 0, err
    info = assert_drawn_by(out, "hand", HandModel.from_file(setup["moved"]))
    assert info["hand_model"]["name"] == "MANO_RIGHT.npz" and info["hand_model"]["mirrored"] is False
    # the default-hand network needs no file and says so in its JSON
    out = tmp_path / "d"
    code, err = predict(capsys, setup, out, "--checkpoint", setup["default_ckpt"], "--hand", "left")
    assert code == 0, err
    info = json.loads((out / "hand.json").read_text())
    assert info["hand_model"]["default"] is True and info["hand_model"]["name"] == "handssca default hand (right)"
    assert info["hand_model"]["mirrored"] is True  # a left hand drawn as the mirror image of the right model
    assert len(obj_vertices(out / "hand.obj")) == HandModel.default().num_vertices


def test_the_recorded_path_is_used_when_the_file_is_there(setup, tmp_path):
    shutil.copy(setup["moved"], setup["trained_at"])
    try:
        model = load_model(setup["mano_ckpt"])
        assert model.hand.content_hash == HandModel.from_file(setup["moved"]).content_hash
        assert model.config.hand_model == str(setup["trained_at"])
    finally:
        setup["trained_at"].unlink()


def test_the_checkpoint_records_the_identity(setup):
    recorded = read_checkpoint(setup["mano_ckpt"])["hand_model"]
    reference = HandModel.from_file(setup["copy"])  # the same arrays, read from another file
    assert recorded["sha256"] == reference.content_hash and recorded["name"] == "MANO_RIGHT.pkl"
    assert recorded["side"] == "right" and recorded["flat_hand_mean"] is False and recorded["default"] is False


def test_export_and_predict_onnx_carry_the_hand_model(setup, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    onnx_path = tmp_path / "m.onnx"
    code, err = run(capsys, "export", "--checkpoint", setup["mano_ckpt"], "--out", onnx_path)
    assert code == 2 and not onnx_path.exists()
    one_line(err, "--hand-model", "MANO_RIGHT.pkl")
    code, err = run(
        capsys, "export", "--checkpoint", setup["mano_ckpt"], "--hand-model", setup["other"], "--out", onnx_path
    )
    assert code == 2
    one_line(err, "MANO_RIGHT.pkl", setup["other"])
    code, err = run(
        capsys, "export", "--checkpoint", setup["mano_ckpt"], "--hand-model", setup["moved"], "--out", onnx_path
    )
    assert code == 0, err
    # predict --onnx needs no file (the graph holds the hand model) and names it
    out = tmp_path / "o"
    code, err = predict(capsys, setup, out, "--onnx", onnx_path)
    assert code == 0, err
    assert_drawn_by(out, "hand", HandModel.from_file(setup["moved"]))
    # a file given must be that model
    code, err = predict(capsys, setup, tmp_path / "x", "--onnx", onnx_path, "--hand-model", setup["other"])
    assert code == 2
    one_line(err, "MANO_RIGHT.pkl", setup["other"], onnx_path)
    code, err = predict(capsys, setup, tmp_path / "y", "--onnx", onnx_path, "--hand-model", setup["copy"])
    assert code == 0, err


def test_torchscript_export_records_the_hand_model(setup, tmp_path):
    from handssca.export import export_model

    path = export_model(setup["mano_ckpt"], tmp_path / "m.pt", "torchscript", hand_model=setup["copy"])
    files = {"handssca_hand_model.json": ""}
    torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["handssca_hand_model.json"])["sha256"] == HandModel.from_file(setup["moved"]).content_hash


def old_checkpoint(path, ckpt_path, **changes):
    """A copy of a checkpoint as written before the hand model's identity was recorded."""
    ckpt = torch.load(ckpt_path, weights_only=True)
    del ckpt["hand_model"]
    ckpt.update(changes)
    torch.save(ckpt, path)
    return path


def test_old_checkpoints(setup, capsys, tmp_path, caplog):
    # a MANO file recorded in its config, no hash: the file is required, and used unverified with a warning
    old = old_checkpoint(tmp_path / "old_mano.pt", setup["mano_ckpt"])
    code, err = predict(capsys, setup, tmp_path / "o", "--checkpoint", old)
    assert code == 2
    one_line(err, "--hand-model", "MANO_RIGHT.pkl", "old_mano.pt")
    with caplog.at_level("WARNING", logger="handssca.hand"):
        code, err = predict(capsys, setup, tmp_path / "o", "--checkpoint", old, "--hand-model", setup["moved"])
    assert code == 0, err
    assert "unverified" in caplog.text and "old_mano.pt" in caplog.text
    assert_drawn_by(tmp_path / "o", "hand", HandModel.from_file(setup["moved"]))
    # no file in its config: the default hand
    old = old_checkpoint(tmp_path / "old_default.pt", setup["default_ckpt"])
    assert load_model(old).hand.is_default
    # imported from the authors' weights (it names its source) before identities: MANO, its file required
    old = old_checkpoint(tmp_path / "old_converted.pt", setup["default_ckpt"], source="snapshot_80.pth.tar")
    code, err = predict(capsys, setup, tmp_path / "c", "--checkpoint", old)
    assert code == 2
    one_line(err, "--hand-model", "old_converted.pt")


def test_a_broken_identity_is_one_line(setup, capsys, tmp_path):
    ckpt = torch.load(setup["mano_ckpt"], weights_only=True)
    ckpt["hand_model"]["side"] = "middle"
    torch.save(ckpt, tmp_path / "broken.pt")
    code, err = predict(capsys, setup, tmp_path / "o", "--checkpoint", tmp_path / "broken.pt")
    assert code == 2
    one_line(err, "broken.pt", "hand_model", "side")
