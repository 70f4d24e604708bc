"""Failures of training and checkpoints: one line and exit status 2, nothing lost, nothing left behind
(issue #15 items 3, 5-9, 12). Inputs and faults are made by the tests."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from handssca.cli import main
from handssca.config import ConfigError, load_config
from handssca.engine import trainer as trainer_mod
from handssca.engine.trainer import Trainer, train
from handssca.model.checkpoint import checkpoint_dict, load_model, read_checkpoint, save_checkpoint
from handssca.model.handssca import build_model

from .tiny import TINY, tiny


def cli(capsys, *argv) -> tuple[int, str]:
    code = main([*argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, *words: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    return save_checkpoint(path, checkpoint_dict(build_model({"input_size": 128, "backbone": "resnet18"})))


# ---------------------------------------------------------------------------------------------- 6, 7: checkpoints
def test_empty_checkpoint_is_one_line_everywhere(tmp_path, capsys):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pt: empty file"):
        load_model(empty)
    for argv in (
        ["predict", str(tmp_path), "--checkpoint", str(empty), "--out", str(tmp_path / "o")],
        ["convert-official", str(empty), str(tmp_path / "c.pt")],
        ["evaluate", "--checkpoint", str(empty)],
        ["train", "--resume", str(empty), *TINY, f"train.out_dir={tmp_path / 'r'}"],
    ):
        code, err = cli(capsys, *argv)
        assert code == 2, argv
        assert_one_line(err, "empty.pt")


def test_checkpoint_without_config_or_with_a_wrong_weight(tmp_path, model_ckpt, capsys):
    ckpt = torch.load(model_ckpt, weights_only=True)
    no_cfg = tmp_path / "nocfg.pt"
    torch.save({k: v for k, v in ckpt.items() if k != "config"}, no_cfg)
    code, err = cli(capsys, "predict", str(tmp_path), "--checkpoint", str(no_cfg), "--out", str(tmp_path / "o"))
    assert code == 2
    assert_one_line(err, "nocfg.pt", "config")
    bad = dict(ckpt, model=dict(ckpt["model"]))
    key = next(k for k, v in bad["model"].items() if v.dim() == 4)
    bad["model"][key] = torch.zeros(3, 3, 3, 3)
    wrong = tmp_path / "wrong.pt"
    torch.save(bad, wrong)
    with pytest.raises(ValueError, match=rf"wrong.pt: weights do not fit the network: .*{key}"):
        load_model(wrong)
    code, err = cli(capsys, "export", "--checkpoint", str(wrong), "--out", str(tmp_path / "m.onnx"))
    assert code == 2
    assert_one_line(err, "wrong.pt", "shape mismatches")


def test_backbone_weights_holding_a_pickled_object(tmp_path, capsys):
    evil = tmp_path / "resnet.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": Path("x")}))  # not tensors: weights_only refuses it
    code, err = cli(capsys, "train", *TINY, f"train.out_dir={tmp_path / 'r'}", f"train.backbone_weights={evil}")
    assert code == 2
    assert_one_line(err, "resnet.pth", "not a readable")


# ---------------------------------------------------------------------------------------------- 8: disk full
def test_disk_full_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, model_ckpt, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(model_ckpt.read_bytes())
    before = target.read_bytes()

    def full_disk(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04partial")
        raise RuntimeError(
            "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/3: file write failed"
        )

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"last.pt: could not write .*PytorchStreamWriter.*previous last.pt is kept"):
        save_checkpoint(target, {"x": 1})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_disk_full_during_training_is_one_line(tmp_path, capsys, monkeypatch):
    def full_disk(obj, f, *a, **k):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    code, err = cli(capsys, "train", "--no-progress", *TINY, f"train.out_dir={tmp_path}", "train.epochs=1")
    assert code == 2
    assert "could not write" in err and "Traceback" not in err
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------- 9: values up front
@pytest.mark.parametrize(
    "override, key",
    [
        ("train.grad_accum=0", "train.grad_accum"),
        ("train.epochs=-1", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("data.train_size=0", "data.train_size"),
        ("train.lr=-1", "train.lr"),
        ("data.renderer=opengl", "data.renderer"),
    ],
)
def test_config_values_are_checked_before_anything_is_built(tmp_path, capsys, override, key):
    with pytest.raises(ConfigError, match=key):
        tiny(tmp_path, override)
    code, err = cli(capsys, "train", *TINY, f"train.out_dir={tmp_path}", override)
    assert code == 2
    assert_one_line(err, key)
    assert not (tmp_path / "last.pt").exists()


def test_an_empty_training_split_is_an_error(tmp_path):
    pytest.importorskip("smplx")
    from tests.data.real_formats import ManoFiles, write_ho3d

    mano = ManoFiles(tmp_path / "mano")
    write_ho3d(tmp_path / "ho3d", mano, n_train=1)
    (tmp_path / "ho3d" / "train.txt").write_text("")
    cfg = load_config(
        "ho3d",
        [
            *TINY,
            f"train.out_dir={tmp_path / 'run'}",
            f"data.root={tmp_path / 'ho3d'}",
            f"model.hand_model={mano.right_path}",
        ],
    )
    with pytest.raises(ValueError, match=r"'train' split of ho3d at .* is empty"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_bad_image_read_by_a_worker_is_named(tmp_path, capsys):
    """A DataLoader worker's error reaches the user as the original one line (not 'Caught ... in worker')."""
    pytest.importorskip("smplx")
    from tests.data.real_formats import ManoFiles, write_freihand

    mano = ManoFiles(tmp_path / "mano")
    write_freihand(tmp_path / "fh", mano, n_train=10, n_eval=1)
    bad = tmp_path / "fh" / "training" / "rgb" / "00000003.jpg"
    bad.write_bytes(bad.read_bytes()[:50])
    code, err = cli(
        capsys,
        "train",
        "--no-progress",
        "--config",
        "freihand",
        f"data.root={tmp_path / 'fh'}",
        f"model.hand_model={mano.right_path}",
        *TINY,
        "data.num_workers=1",
        f"train.out_dir={tmp_path / 'run'}",
        "data.freihand_version=gs",
        "train.batch_size=9",
    )
    assert code == 2
    assert_one_line(err, "00000003.jpg")
    assert "worker" not in err


# ---------------------------------------------------------------------------------------------- 5: resume
def test_resume_with_another_config_lists_the_differences(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny(run, "train.max_steps=1"), progress=False)
    last = str(run / "last.pt")
    code, err = cli(
        capsys, "train", "--resume", last, "--no-progress", *TINY, f"train.out_dir={run}", "train.batch_size=2"
    )
    assert code == 2
    assert_one_line(err, "last.pt", "train.batch_size: 4 -> 2", "--resume-anyway")
    code, err = cli(
        capsys, "train", "--resume", last, "--no-progress", *TINY, f"train.out_dir={run}", "model.block=none"
    )
    assert code == 2
    assert_one_line(err, "model.block: 'ssca' -> 'none'")
    # the hand model's file may move, but resuming with another model is a change of what is trained
    from tests.hand.mano_files import write_model

    mano, _ = write_model(tmp_path, "npz", seed=1)
    with pytest.raises(
        ValueError, match=r"hand model: the default hand \(sha256 .*\) -> the hand model MANO_RIGHT.npz"
    ):
        Trainer(tiny(run, f"model.hand_model={mano}"), resume=last, progress=False)
    # a checkpoint from before a setting existed resumes when the setting has its default
    ckpt = torch.load(last, weights_only=True)
    del ckpt["config"]["data"]["annotations"]
    older = run / "older.pt"
    torch.save(ckpt, older)
    assert train(tiny(run, "train.max_steps=2"), resume=str(older), progress=False)["step"] == 2
    # harmless changes (a longer run) and explicit consent continue
    assert train(tiny(run, "train.max_steps=2"), resume=last, progress=False)["step"] == 2
    out = train(tiny(run, "train.max_steps=3", "train.batch_size=2"), resume=last, progress=False, resume_anyway=True)
    assert out["step"] == 3


# ---------------------------------------------------------------------------------------------- 12: NaN, Ctrl-C
def test_nan_stop_does_not_name_a_checkpoint_that_was_never_written(tmp_path):
    cfg = tiny(tmp_path, "train.epochs=1")
    cfg.train.loss_weights["shape"] = float("nan")
    with pytest.raises(FloatingPointError, match="no checkpoint was written yet") as e:
        Trainer(cfg, progress=False).fit()
    assert "last good checkpoint" not in str(e.value)


def test_ctrl_c_saves_last_pt_and_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    real = trainer_mod.compute_losses
    calls = {"n": 0}

    def interrupted_at_third_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(trainer_mod, "compute_losses", interrupted_at_third_batch)
    code, err = cli(
        capsys, "train", "--no-progress", *TINY, f"train.out_dir={tmp_path}", "train.batch_size=2", "train.epochs=1"
    )
    assert code == 130
    assert err.splitlines()[-1] == "handssca train: interrupted" and "Traceback" not in err
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 2 and ckpt["batches_done"] == 2 and ckpt["epoch"] == 0
    monkeypatch.setattr(trainer_mod, "compute_losses", real)
    out = train(
        tiny(tmp_path, "train.batch_size=2", "train.epochs=1"), resume=str(tmp_path / "last.pt"), progress=False
    )
    assert out["step"] == 4  # the two remaining batches of the epoch


@pytest.mark.parametrize(
    "signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_during_an_optimiser_step_waits_for_its_end(tmp_path, capsys, monkeypatch, signum, code, word):
    """last.pt never holds half an update: a signal that arrives inside optimizer.step() takes effect after it."""
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def step_with_signal(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signum)
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step_with_signal)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)  # SIGINT is ignored under nohup
    got, err = cli(
        capsys, "train", "--no-progress", *TINY, f"train.out_dir={tmp_path}", "train.batch_size=2", "train.epochs=1"
    )
    assert got == code and err.splitlines()[-1] == f"handssca train: {word}"
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 2 and ckpt["batches_done"] == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # restored as they were


def test_save_interrupted_mid_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupted(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "best.pt", {"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_with_non_tensor_weights_is_one_line(tmp_path, model_ckpt, capsys):
    ckpt = torch.load(model_ckpt, weights_only=True)
    ckpt["model"] = dict(ckpt["model"], **{next(iter(ckpt["model"])): 3})
    odd = tmp_path / "odd.pt"
    torch.save(ckpt, odd)
    code, err = cli(capsys, "export", "--checkpoint", str(odd), "--out", str(tmp_path / "m.onnx"))
    assert code == 2
    assert_one_line(err, "odd.pt", "not tensors")


# ---------------------------------------------------------------------------------------------- 3: workers
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigkill_of_training_leaves_no_worker_behind(tmp_path):
    """DataLoader workers start from the forkserver, so they are not the trainer's children: after a
    SIGKILL of `handssca train` the forkserver, its workers and the resource tracker stayed alive.
    They must end by themselves within seconds."""
    argv = [
        sys.executable,
        "-m",
        "handssca.cli",
        "train",
        "--no-progress",
        "--config",
        "synthetic",
        *TINY,
        "data.num_workers=2",
        "data.train_size=2000",
        "train.epochs=1",
        f"train.out_dir={tmp_path / 'run'}",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(family) < 4:  # forkserver, two workers, resource tracker
            family |= _descendants(proc.pid)
            time.sleep(0.5)
        assert len(family) >= 3, f"workers did not start: {family}"
        time.sleep(3)
        family |= _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while _alive(family) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(family), f"still running 15 s after the trainer was killed: {_alive(family)}"
    finally:
        for p in _alive(family):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
