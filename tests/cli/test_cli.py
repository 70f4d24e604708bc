import subprocess
import sys

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
    for fact in ("python", "torch", "numpy", "[devices]", "[selective scan]", "auto on cpu", "[hand model]", "default hand"):
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
