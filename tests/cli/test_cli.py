import subprocess
import sys

import pytest
from PIL import Image

from handssca.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("info", "score", "hand"):
        assert command in out


def test_info_prints_versions_devices_backends_and_hand(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for fact in (
        "python",
        "torch",
        "numpy",
        "[devices]",
        "[selective scan]",
        "auto on cpu",
        "[hand model]",
        "default hand",
        "[renderer]",
        "30,864,852",
    ):
        assert fact in out


def test_hand_show_writes_a_picture(tmp_path, capsys):
    out = tmp_path / "hand.png"
    assert main(["hand", "show", "--out", str(out), "--samples", "1"]) == 0
    img = Image.open(out)
    assert img.size[0] > 300
    assert "wrote" in capsys.readouterr().out


def test_console_script_and_import_do_no_work():
    # importing the package must not load torch-heavy modules, files or compile kernels
    code = "import sys, handssca; import handssca.cli; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_data_preview_synthetic_and_freihand(tmp_path, capsys):
    pytest.importorskip("smplx")
    from tests.data.real_formats import ManoFiles, write_freihand

    assert (
        main(
            [
                "data",
                "preview",
                "--dataset",
                "synthetic",
                "--count",
                "3",
                "--size",
                "128",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 0
    )
    mano = ManoFiles(tmp_path / "mano")
    write_freihand(tmp_path / "fh", mano, n_train=2, n_eval=2)
    assert (
        main(
            [
                "data",
                "preview",
                "--dataset",
                "freihand",
                "--root",
                str(tmp_path / "fh"),
                "--split",
                "test",
                "--count",
                "2",
                "--size",
                "128",
                "--out",
                str(tmp_path / "f.png"),
                "--hand-model",
                str(mano.right_path),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "data",
                "preview",
                "--dataset",
                "freihand",
                "--root",
                str(tmp_path / "fh"),
                "--out",
                str(tmp_path / "y.png"),
            ]
        )
        == 2
    )
    assert "model.hand_model" in capsys.readouterr().err  # MANO labels need the MANO file: one line, exit 2
    assert Image.open(tmp_path / "s.png").size[0] > 300 and Image.open(tmp_path / "f.png").size[0] > 300
    assert (
        main(
            [
                "data",
                "preview",
                "--dataset",
                "ho3d",
                "--root",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "missing" in capsys.readouterr().err


def test_info_with_config_prints_parameter_counts(capsys):
    assert main(["info", "--config", "ho3d"]) == 0
    out = capsys.readouterr().out
    assert "30,864,852" in out and "578,304" in out and "[renderer]" in out


def test_data_preview_shows_what_a_config_trains_on(tmp_path, monkeypatch):
    import handssca.pictures

    seen = {}

    def fake_grid(ds, count, **kw):
        import matplotlib.pyplot as plt

        seen.update(ds=ds, count=count)
        return plt.figure()

    monkeypatch.setattr(handssca.pictures, "sample_grid", fake_grid)
    out = str(tmp_path / "g.png")
    assert main(["data", "preview", "--config", "synthetic", "--augment", "--count", "2", "--out", out]) == 0
    ds = seen["ds"]
    # the config's crop size, view limits and augmentation setting (off in the synthetic config)
    assert (ds.image_size, ds.max_tilt_deg, ds.max_roll_deg, ds.max_occluders, ds.augment) == (128, 30, 30, 1, False)
    assert len(ds) == 2
    assert (
        main(
            [
                "data",
                "preview",
                "--config",
                "synthetic",
                "--size",
                "160",
                "--out",
                out,
                "data.synthetic_max_roll_deg=10",
            ]
        )
        == 0
    )
    assert (seen["ds"].image_size, seen["ds"].max_roll_deg) == (160, 10)
    assert main(["data", "preview", "--out", out]) == 0  # no config: the defaults (any view, 256)
    assert (seen["ds"].image_size, seen["ds"].max_tilt_deg) == (256, 180)
