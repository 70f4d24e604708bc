import json
import zipfile

import numpy as np
import pytest

from handssca.cli import main
from handssca.evaluation import (
    FileFormatError,
    evaluate_freihand,
    read_points_json,
    read_pred_json,
    write_dexycb_results,
    write_freihand_pred,
    write_ho3d_pred,
)
from handssca.hand.joint_orders import FREIHAND_TO_HO3D, HO3D_TO_FREIHAND


def make_gt(n=5, v=50, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 21, 3)) * 0.04 + [0, 0, 0.5]
    verts = rng.normal(size=(n, v, 3)) * 0.04 + [0, 0, 0.5]
    return xyz, verts


def dump(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def score_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_joint_order_maps_are_inverse():
    assert np.array_equal(HO3D_TO_FREIHAND[FREIHAND_TO_HO3D], np.arange(21))


def test_freihand_round_trip_perfect_and_perturbed(tmp_path, capsys):
    xyz, verts = make_gt()
    gx = dump(tmp_path / "evaluation_xyz.json", xyz.tolist())
    gv = dump(tmp_path / "evaluation_verts.json", verts.tolist())
    pred = write_freihand_pred(tmp_path / "pred.json", xyz, verts)
    out = score_json(capsys, "score", "freihand", "--pred", str(pred), "--gt-xyz", gx, "--gt-verts", gv, "--json")
    for key in ("pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm", "mpvpe_mm"):
        assert out[key] < 1e-5
    assert out["f5"] == 1.0 and out["f15"] == 1.0
    # official quirk: the 1e-8 epsilons leave ~4e-9 m error, which misses the 0 mm threshold only
    assert out["auc_pa_joints"] == pytest.approx(1 - 0.5 / 99) and out["auc_joints"] == pytest.approx(1.0)

    # a known offset of 3 mm along x: unaligned MPJPE is exactly 3 mm, PA removes it
    write_freihand_pred(tmp_path / "pred.json", xyz + [0.003, 0, 0], verts + [0.003, 0, 0])
    out = score_json(capsys, "score", "freihand", "--pred", str(pred), "--gt-xyz", gx, "--gt-verts", gv, "--json")
    assert out["mpjpe_mm"] == pytest.approx(3.0) and out["mpvpe_mm"] == pytest.approx(3.0)
    assert out["pa_mpjpe_mm"] < 1e-5
    ref = evaluate_freihand(xyz + [0.003, 0, 0], verts + [0.003, 0, 0], xyz, verts).metrics
    assert out["f5_unaligned"] == pytest.approx(ref["f5_unaligned"])


def test_ho3d_writer_converts_frame_and_order(tmp_path, capsys):
    xyz_cv, verts_cv = make_gt(seed=1)
    gl = np.array([1.0, -1.0, -1.0])
    gx = dump(tmp_path / "evaluation_xyz.json", (xyz_cv[:, FREIHAND_TO_HO3D] * gl).tolist())
    gv = dump(tmp_path / "evaluation_verts.json", (verts_cv * gl).tolist())
    root = xyz_cv[:, 0].copy()
    # a root-relative prediction placed on the GT root by the writer
    pred = write_ho3d_pred(tmp_path / "pred.zip", xyz_cv - root[:, None], verts_cv - root[:, None], gt_root=root)
    with zipfile.ZipFile(pred) as zf:
        assert zf.namelist() == ["pred.json"]
    stored_xyz, _ = read_pred_json(pred)
    assert np.all(stored_xyz[..., 2] < 0)  # OpenGL: hand in front of the camera has z < 0
    out = score_json(capsys, "score", "ho3d", "--pred", str(pred), "--gt-xyz", gx, "--gt-verts", gv, "--json")
    for key in ("mpjpe_mm", "mpvpe_mm", "st_mpjpe_mm", "pa_mpjpe_mm", "pa_mpvpe_mm"):
        assert out[key] < 1e-5, key


def test_dexycb_round_trip(tmp_path, capsys):
    xyz, _ = make_gt(seed=2)
    gt = write_dexycb_results(tmp_path / "gt.txt", range(5), xyz)
    pred = write_dexycb_results(tmp_path / "res.txt", range(5), xyz + [0.0, 0.010, 0.0])
    out = score_json(capsys, "score", "dexycb", "--pred", str(pred), "--gt", str(gt), "--json")
    assert out["abs_mpjpe_mm"] == pytest.approx(10.0, abs=1e-4)
    assert out["rr_mpjpe_mm"] < 1e-4 and out["pa_mpjpe_mm"] < 1e-4
    assert out["num_samples"] == 5


def test_plot_is_written(tmp_path, capsys):
    xyz, verts = make_gt()
    gx = dump(tmp_path / "x.json", xyz.tolist())
    gv = dump(tmp_path / "v.json", verts.tolist())
    pred = write_freihand_pred(tmp_path / "pred.json", xyz + 0.004, verts)
    assert (
        main(
            [
                "score",
                "freihand",
                "--pred",
                str(pred),
                "--gt-xyz",
                gx,
                "--gt-verts",
                gv,
                "--plot",
                str(tmp_path / "pck.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "pck.png").stat().st_size > 1000
    assert "pa_mpjpe_mm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json at all", "not valid JSON"),
        (json.dumps([[[[0, 0, 0]] * 21] * 4, [[[0, 0, 0]] * 50] * 4]), "expected 5 samples; found 4"),
        (json.dumps([[[[0, 0]] * 21] * 5, [[[0, 0, 0]] * 50] * 5]), r"expected shape \(N, 21, 3\)"),
        (json.dumps([[[[0, 0, 0]] * 21] * 5]), "two lists"),
        (json.dumps([[[[0, 0, float("nan")]] * 21] * 5, [[[0, 0, 0]] * 50] * 5]).replace("NaN", "NaN"), "non-finite"),
    ],
)
def test_bad_prediction_files(tmp_path, capsys, content, message):
    xyz, verts = make_gt()
    gx = dump(tmp_path / "x.json", xyz.tolist())
    gv = dump(tmp_path / "v.json", verts.tolist())
    (tmp_path / "pred.json").write_text(content)
    with pytest.raises(FileFormatError, match=message):
        read_pred_json(tmp_path / "pred.json", count=5)
    assert main(["score", "freihand", "--pred", str(tmp_path / "pred.json"), "--gt-xyz", gx, "--gt-verts", gv]) == 2
    assert "pred.json" in capsys.readouterr().err


def test_bad_dexycb_files(tmp_path):
    from handssca.evaluation import read_dexycb_results

    (tmp_path / "r.txt").write_text("0,1,2,3\n")
    with pytest.raises(FileFormatError, match=r"r.txt:1: expected 64"):
        read_dexycb_results(tmp_path / "r.txt")
    (tmp_path / "r.txt").write_text("0," + ",".join(["nan"] * 63) + "\n")
    with pytest.raises(FileFormatError, match="non-finite"):
        read_dexycb_results(tmp_path / "r.txt")
    xyz, _ = make_gt()
    gt = write_dexycb_results(tmp_path / "gt.txt", range(5), xyz)
    pred = write_dexycb_results(tmp_path / "p.txt", range(3), xyz[:3])
    assert main(["score", "dexycb", "--pred", str(pred), "--gt", str(gt)]) == 2


@pytest.mark.parametrize("which", ["pred", "gt-xyz", "gt-verts", "zipped pred"])
def test_absurdly_nested_json_is_one_typed_error_naming_the_file(tmp_path, capsys, which):
    xyz, verts = make_gt()
    files = {
        "pred": str(write_freihand_pred(tmp_path / "pred.json", xyz, verts)),
        "gt-xyz": dump(tmp_path / "evaluation_xyz.json", xyz.tolist()),
        "gt-verts": dump(tmp_path / "evaluation_verts.json", verts.tolist()),
    }
    deep = "[" * 100_000 + "]" * 100_000
    if which == "zipped pred":
        bad = tmp_path / "pred.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("pred.json", deep)
        files["pred"] = str(bad)
    else:
        bad = tmp_path / f"{which}_deep.json"
        bad.write_text(deep)
        files[which] = str(bad)
    with pytest.raises(FileFormatError, match=rf"{bad.name}: .*nest"):
        read_pred_json(bad) if "pred" in which else read_points_json(bad)
    argv = ["score", "freihand", "--pred", files["pred"], "--gt-xyz", files["gt-xyz"], "--gt-verts", files["gt-verts"]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad.name in err and "nest" in err, err


@pytest.mark.parametrize("benchmark", ["freihand", "ho3d"])
def test_predicted_meshes_of_another_vertex_count_are_an_error(tmp_path, capsys, benchmark):
    xyz, verts = make_gt(v=50)
    gx = dump(tmp_path / "x.json", xyz.tolist())
    gv = dump(tmp_path / "v.json", verts.tolist())
    pred = write_freihand_pred(tmp_path / "pred.json", xyz, verts[:, :40])  # e.g. another hand model's mesh
    assert main(["score", benchmark, "--pred", str(pred), "--gt-xyz", gx, "--gt-verts", gv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pred.json" in err and "(N, 50, 3)" in err and "(5, 40, 3)" in err
