import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from handssca.config import load_config
from handssca.data.factory import build_dataset
from handssca.data.loader import make_loader
from handssca.engine.rng import seed_everything
from handssca.engine.trainer import Trainer, lr_at, train
from handssca.losses import compute_losses
from handssca.model import build_model

from .tiny import TINY, tiny


def test_lr_schedule_is_the_official_step_decay():
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "ho3d.yaml")
    assert lr_at(cfg, 0) == pytest.approx(1e-4)
    assert lr_at(cfg, 10) == pytest.approx(0.7e-4)
    assert lr_at(cfg, 79) == pytest.approx(1e-4 * 0.7**7)


@pytest.mark.parametrize("amp", [False, True])
def test_a_few_steps_decrease_the_loss(tmp_path, amp):
    """Also with train.amp on the CPU: bf16 autocast around the network, float32 outputs and losses."""
    torch.manual_seed(0)
    cfg = tiny(tmp_path, f"train.amp={str(amp).lower()}")
    model = build_model(cfg.model)
    batch = next(iter(make_loader(build_dataset(cfg, "train"), 4)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(8):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.train.amp):
            pred = model(batch["image"])
        assert pred["vertices"].dtype == torch.float32
        loss = compute_losses(pred, batch, model.hand, cfg.train.loss_weights)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < 0.7 * losses[0], losses
    if amp:  # the trainer's own autocast path runs
        summary = train(tiny(tmp_path / "run", "train.amp=true", "train.max_steps=2"), progress=False)
        assert summary["step"] == 2


def test_resume_after_interruption_reproduces_the_uninterrupted_weights(tmp_path):
    full = train(tiny(tmp_path / "a", "train.epochs=2"), progress=False)
    assert full["step"] == 4 and full["stopped"] is None
    cut = train(tiny(tmp_path / "b", "train.epochs=2", "train.max_steps=3"), progress=False)
    assert cut["stopped"] and cut["step"] == 3
    resumed = train(tiny(tmp_path / "b", "train.epochs=2"), resume=str(tmp_path / "b" / "last.pt"), progress=False)
    assert resumed["step"] == 4
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for (_, va), (_, vb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert torch.equal(va["exp_avg"], vb["exp_avg"])
    assert (tmp_path / "a" / "best.pt").is_file() and (tmp_path / "a" / "history.json").is_file()


def test_nan_loss_stops_with_the_step_and_term(tmp_path):
    cfg = tiny(tmp_path, "train.epochs=1")
    cfg.train.loss_weights["shape"] = float("nan")
    with pytest.raises(FloatingPointError, match=r"loss term 'shape' is nan at step 0"):
        Trainer(cfg, progress=False).fit()


def _ddp_overrides(batch):
    return [
        *TINY,
        "train.epochs=1",
        "train.freeze_bn=true",
        f"train.batch_size={batch}",
        "data.val_size=0",
        "train.checkpoint_every=0",
    ]


def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
        import os, sys, torch
        from handssca.config import load_config
        from handssca.engine.trainer import Trainer
        from handssca.engine.distributed import init_distributed, cleanup_distributed
        out = sys.argv[1]
        cfg = load_config(None, sys.argv[2:] + [f"train.out_dir={out}"])
        info = init_distributed("cpu")
        trainer = Trainer(cfg, info=info, progress=False)
        trainer.fit()
        torch.save(trainer.model.state_dict(), os.path.join(out, f"rank{info.rank}.pt"))
        cleanup_distributed()
        """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with socket.socket() as sock:  # a free port on the loopback interface
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        str(script),
        str(tmp_path / "ddp"),
        *_ddp_overrides(2),
    ]
    for argv in (cmd, [sys.executable, str(script), str(tmp_path / "single"), *_ddp_overrides(4)]):
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
    r0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "rank0.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ in {k}"
    # Same maths, different summation order: Adam's first steps (update ~ lr * sign(g)) amplify rounding
    # for parameters whose gradient is ~0, so compare the whole update, not each element.
    seed_everything(0)
    init = build_model(tiny(tmp_path).model).state_dict()
    num = den = 0.0
    for k, v in single.items():
        if v.is_floating_point() and "running" not in k:
            num += (r0[k] - v).square().sum().item()
            den += (v - init[k]).square().sum().item()
    assert den > 0 and (num / den) ** 0.5 < 0.01


def test_evaluate_command_writes_its_report(tmp_path, capsys):
    import json

    from handssca.cli import main
    from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18"}).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", checkpoint_dict(model))
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                "--no-progress",
                "data.test_size=4",
                "data.num_workers=0",
                "eval.batch_size=2",
            ]
        )
        == 0
    )
    for name in ("metrics.json", "per_sample.csv", "pck.png", "best_worst.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 4 and metrics["pa_mpjpe_mm_meanpose"] > 0
    assert len((out / "per_sample.csv").read_text().splitlines()) == 5
    assert "pa_mpjpe_mm" in capsys.readouterr().out


def test_evaluate_overrides_do_not_change_the_stored_network(tmp_path, capsys):
    """The weights decide the architecture: a model.* override on the command line is not applied."""
    from handssca.cli import main
    from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18"}).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", checkpoint_dict(model))
    argv = [
        "evaluate",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "e"),
        "--no-progress",
        "data.test_size=2",
        "data.num_workers=0",
        "eval.batch_size=2",
        "model.block=none",
    ]
    assert main(argv) == 0, capsys.readouterr().err


def test_device_names():
    from handssca.environment import resolve_device

    assert resolve_device("auto").type in ("cpu", "cuda") and resolve_device("cpu").type == "cpu"
    assert resolve_device("meta").type == "meta"  # any torch device name passes through
    with pytest.raises(ValueError, match="device: expected auto"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="train.device: 'cuda:1' asked for but no CUDA"):
            resolve_device("cuda:1", key="train.device")


def test_cpu_bf16_detection_reads_the_flags():
    from handssca.environment import cpu_has_bf16

    assert cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n") is True
    assert cpu_has_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n") is False
    assert cpu_has_bf16("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n") is True  # aarch64
    assert cpu_has_bf16("processor\t: 0\nFeatures\t: fp asimd\n") is False


def test_evaluate_with_the_landmark_fit_reports_both(tmp_path, capsys):
    """``--refine landmarks``: the fitted hand's metrics beside the network's, per sample too; on the crops
    where the detector finds the hand the fit beats an untrained network by far; the submission and the
    headline metrics stay the network's."""
    import csv
    import json

    from handssca.cli import main
    from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

    torch.manual_seed(0)
    model = build_model({"input_size": 128, "backbone": "resnet18"}).eval()
    ckpt = save_checkpoint(tmp_path / "m.pt", checkpoint_dict(model))
    common = ["--checkpoint", str(ckpt), "--no-progress", "data.test_size=12", "data.num_workers=0"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "a"), "--refine", "landmarks"]) == 0
    printed = capsys.readouterr().out
    assert "network" in printed and "fitted" in printed and "landmark fit:" in printed
    assert main(["evaluate", *common, "--out", str(tmp_path / "b")]) == 0
    fit_run = json.loads((tmp_path / "a" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "b" / "metrics.json").read_text())
    fit = fit_run.pop("landmark_fit")
    assert fit["samples"] == 12 and 1 <= fit["fitted"] <= fit["landmarks_found"]
    assert fit_run["pa_mpjpe_mm"] == pytest.approx(plain["pa_mpjpe_mm"])  # the network's numbers unchanged
    rows = list(csv.DictReader(open(tmp_path / "a" / "per_sample.csv")))
    changed = [r for r in rows if float(r["pa_mpjpe_mm_fit"]) != float(r["pa_mpjpe_mm"])]
    assert len(changed) == fit["fitted"]
    assert np.median([float(r["pa_mpjpe_mm_fit"]) for r in changed]) < 0.6 * np.median(
        [float(r["pa_mpjpe_mm"]) for r in changed]
    )
