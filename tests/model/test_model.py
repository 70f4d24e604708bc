import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from handssca.cli import main
from handssca.convert import convert_official_state_dict
from handssca.hand import HandModel
from handssca.model import SSCA, build_model, count_parameters, load_model
from handssca.model.backbone import FPNBackbone
from handssca.model.checkpoint import checkpoint_dict, save_checkpoint
from tests.hand.mano_files import write_model

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"


@pytest.fixture(scope="module")
def models():
    return {block: build_model({"block": block}) for block in ("none", "ssa", "ssca", "self_attention")}


def test_parameter_counts_equal_the_official_code(models):
    # measured from the authors' code (spec: official-code.md section 3)
    assert count_parameters(models["ssca"]) == {
        "backbone": 25_082_176,
        "block": 578_304,
        "regressor": 5_204_372,
        "total": 30_864_852,
    }
    assert count_parameters(models["ssa"])["block"] == 567_808
    assert count_parameters(models["none"])["total"] == 30_286_548
    assert 4_400_000 < count_parameters(models["self_attention"])["block"] < 4_800_000
    assert count_parameters(build_model({"input_size": 224}))["total"] == 30_863_540


@pytest.mark.parametrize("size", [224, 256])
def test_shapes_batch_one(size):
    model = build_model({"input_size": size, "backbone": "resnet18"}).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, size, size))
    s = size // 8
    nv = model.hand.num_vertices
    assert out["vertices"].shape == (1, nv, 3) and out["joints"].shape == (1, 21, 3)
    assert out["joints_img"].shape == (1, 21, 2) and out["pose_aa"].shape == (1, 48)
    assert out["betas"].shape == (1, 10) and out["rotmats"].shape == (1, 16, 3, 3)
    assert out["heatmaps"].shape == (1, 21, s, s)
    torch.testing.assert_close(out["heatmaps"].sum((2, 3)), torch.ones(1, 21))
    assert torch.all((out["joints_img"] > 0) & (out["joints_img"] < 1))


@pytest.mark.parametrize("block", ["none", "self_attention", "ssa", "ssca"])
def test_every_variant_runs_and_gradients_reach_every_parameter(block):
    torch.manual_seed(0)
    model = build_model({"block": block, "backbone": "resnet18"}).train()
    out = model(torch.rand(2, 3, 256, 256))
    loss = out["vertices"].square().mean() * 1e4 + out["joints_img"].sum() + out["rotmats"].sum() + out["betas"].sum()
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead


def test_wrong_input_size_is_explained():
    model = build_model({"backbone": "resnet18"})
    with pytest.raises(ValueError, match=r"images: expected \(B, 3, 256, 256\)"):
        model(torch.rand(1, 3, 224, 224))
    with pytest.raises(ValueError, match="model.block"):
        build_model({"block": "transformer"})
    with pytest.raises(ValueError, match=r"unknown keys \['size'\]"):
        build_model({"size": 256})


def _official_ssca_npz():
    path = SPEC / "ssca_block_W32.npz"
    if not path.is_file():
        pytest.skip("shared spec not present (not part of a user's clone)")
    return np.load(path)


def test_ssca_block_matches_the_official_output():
    d = _official_ssca_npz()
    state = {k[len("param/") :]: torch.tensor(d[k]) for k in d.files if k.startswith("param/")}
    block = SSCA(256, 32)
    block.load_state_dict(convert_official_state_dict(state, submodule="S3C"), strict=True)
    with torch.no_grad():
        y = block(torch.tensor(d["input"]))
    ref = torch.tensor(d["output"])
    assert (y - ref).abs().max() / ref.abs().max() < 1e-4


def test_ssca_channel_branch_reorders_exactly_with_an_identity_scan(monkeypatch):
    # Replace the scan by a running sum; compare the channel branch's reordering with the four
    # (channel, row)-plane orders of the spec written as explicit loops (H != W on purpose).
    from handssca.model import ssca as ssca_mod

    b, c, h, w = 1, 3, 2, 4
    x = torch.randn(b, w, c, h, dtype=torch.float64)  # the channel-plane input (B, W, d, H)
    n = 1
    xp = torch.zeros(4, 1 + 2 * n, w, dtype=torch.float64)
    dtw = torch.zeros(4, w, 1, dtype=torch.float64)
    bias = torch.full((4, w), 50.0, dtype=torch.float64)  # softplus(50) = 50: delta constant
    A_logs = torch.full((4 * w, n), -60.0, dtype=torch.float64)  # A = -exp(-60) ~ 0
    monkeypatch.setattr(
        ssca_mod, "selective_scan", lambda u, dt, A, B, C, D, delta_bias, delta_softplus, backend: torch.cumsum(u, -1)
    )
    y = ssca_mod.cross_scan_unfused(x, xp, dtw, bias, A_logs, torch.zeros(4 * w, dtype=torch.float64)).view(b, w, c, h)
    # independent: sequences over the (c, h) plane in the 4 orders, prefix sums, mapped back
    ref = torch.zeros(b, w, c, h, dtype=torch.float64)
    orders = [[(ci, hi) for ci in range(c) for hi in range(h)], [(ci, hi) for hi in range(h) for ci in range(c)]]
    orders += [list(reversed(o)) for o in orders]
    for order in orders:
        for wi in range(w):
            acc = 0.0
            for ci, hi in order:
                acc = acc + x[0, wi, ci, hi]
                ref[0, wi, ci, hi] += acc
    torch.testing.assert_close(y, ref)


def _official_keys():
    path = SPEC / "official_state_dict_keys_W32.json"
    if not path.is_file():
        pytest.skip("shared spec not present")
    return json.loads(path.read_text())["keys"]


def test_converter_maps_every_official_key_onto_the_model(models):
    official = {k: torch.zeros(shape, dtype=getattr(torch, dt)) for k, shape, dt in _official_keys()}
    converted = convert_official_state_dict(official)
    own = models["ssca"].state_dict()
    assert set(converted) == set(own)
    for k, v in converted.items():
        assert v.shape == own[k].shape, k
    with pytest.raises(ValueError, match="module.backbone.fc.weight"):
        convert_official_state_dict({**official, "module.backbone.fc.weight": torch.zeros(1)})


def test_convert_official_round_trip_through_cli_and_load_model(tmp_path, models, capsys):
    own = models["ssca"].state_dict()
    torch.manual_seed(0)
    official = {}
    for k, shape, dt in _official_keys():
        official[k] = torch.randn(shape) if dt == "float32" else torch.zeros(shape, dtype=getattr(torch, dt))
    src = tmp_path / "snapshot_80.pth.tar"
    torch.save({"epoch": 80, "network": official, "optimizer": {"state": {}, "param_groups": []}}, src)
    dst = tmp_path / "converted.pt"
    assert main(["convert-official", str(src), str(dst)]) == 0
    # the authors trained with MANO: without the file recorded, every use needs it (never the default hand)
    with pytest.raises(ValueError, match="--hand-model"):
        load_model(dst)
    mano, _ = write_model(tmp_path, "official", seed=1)
    model = load_model(dst, mano)
    assert model.hand.content_hash == HandModel.from_file(mano).content_hash
    # with the file given to convert-official, its hash is recorded and checked
    assert main(["convert-official", str(src), str(dst), "--hand-model", str(mano)]) == 0
    shutil.copy(mano, tmp_path / "elsewhere.pkl")
    mano.unlink()
    model = load_model(dst, tmp_path / "elsewhere.pkl")
    other, _ = write_model(tmp_path, "npz", seed=2)
    with pytest.raises(ValueError, match="MANO_RIGHT.pkl.*MANO_RIGHT.npz"):
        load_model(dst, other)
    assert model.config.block == "ssca" and model.config.input_size == 256
    state = model.state_dict()
    for k, v in official.items():
        new = convert_official_state_dict({k: v})
        for nk, nv in new.items():
            torch.testing.assert_close(state[nk], nv, msg=nk)
    assert set(state) == set(own)
    assert main(["convert-official", str(src), str(dst), "--input-size", "224"]) == 2
    assert "W=32" in capsys.readouterr().err


def test_checkpoint_round_trip_keeps_outputs(tmp_path):
    model = build_model({"backbone": "resnet18", "block": "ssa"}).eval()
    path = save_checkpoint(tmp_path / "m.pt", checkpoint_dict(model))
    again = load_model(path)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        torch.testing.assert_close(again(x)["vertices"], model(x)["vertices"])
    assert "hand.v_template" not in model.state_dict()  # hand data never enters checkpoints
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_model(tmp_path / "bad.pt")


def test_imagenet_weights_load_by_path(tmp_path):
    ref = FPNBackbone("resnet18")
    trunk = {
        k: torch.randn_like(v) if v.is_floating_point() else v
        for k, v in ref.state_dict().items()
        if not k.startswith(("toplayer", "latlayer", "smooth"))
    }
    trunk["fc.weight"] = torch.zeros(1000, 512)
    torch.save(trunk, tmp_path / "resnet18.pth")
    bb = FPNBackbone("resnet18")
    missing = bb.load_imagenet_weights(tmp_path / "resnet18.pth")
    assert all(k.startswith(("toplayer", "latlayer", "smooth")) for k in missing)
    torch.testing.assert_close(bb.conv1.weight, trunk["conv1.weight"])
    with pytest.raises(ValueError, match="not a torchvision resnet50"):
        FPNBackbone("resnet50").load_imagenet_weights(tmp_path / "resnet18.pth")


def test_cpu_bf16_autocast_keeps_the_hand_layer_and_heads_in_float32():
    """Under mixed precision the convolutions run in bf16, but the 6D -> rotation step, the soft-argmax
    and the hand layer stay float32: the mesh is exactly the float32 hand of the returned parameters."""
    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18", "block": "ssca", "init": "mean_pose"}).eval()
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        pose = out["pose_aa"]
        hand = model.hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=out["betas"])
    for k in ("vertices", "joints", "pose_aa", "betas", "rotmats", "joints_img"):
        assert out[k].dtype == torch.float32, k
    torch.testing.assert_close(out["vertices"], hand["vertices"], rtol=0, atol=1e-6)
    # bf16 convolutions change the numbers a little, not the hand
    assert (out["joints"] - ref["joints"]).abs().max() < 2e-3
    assert (out["joints_img"] - ref["joints_img"]).abs().max() < 2e-2
    rot = out["rotmats"]
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), eye, atol=1e-5, rtol=0)
