"""One-command GPU check (issue #27): tests, scan kernels, a training step and inference on one CUDA device.

    python benchmarks/gpu.py [--out runs/gpu_check.json] [--dry] [--sections tests scan ...] [--deadline 450]

On a CUDA machine, in at most ``--deadline`` seconds (default 450, under 8 minutes), in this order:

- ``environment``: the device, its capability and memory, torch / CUDA / cuDNN / triton / mamba_ssm versions,
  which scan backends run and which ``auto`` picks.
- ``tests``: ``pytest -m "gpu or triton" tests`` as a subprocess with a timeout; pass / fail / skip counts.
- ``scan``: the selective scan at the SSCA block's own shapes, read from the model config (ResNet-50 at 256:
  spatial (B, 4 x 512, L = 32 x 32, N = 16) and channel plane (B, 4 x 32, L = 512 x 32, N = 16), 4 groups
  of B/C): forward and backward of the torch, triton and (when importable) mamba backends against the torch
  backend in float64 at batch 1 (max abs / relative error of y and of every input's gradient), then
  median times, interleaved, at batch 1 and at the training batch, forward and forward+backward.
- ``train``: one training step (forward under bf16 autocast, the paper's losses, backward, Adam) of the
  ``ssca`` and ``none`` variants at batch 32, 256, interleaved: images/s, ssca / none, peak memory.
- ``inference``: batch-1 latency at 256 of both variants, float32 and bf16 autocast, interleaved.

Every section has its own time budget (cut to what is left of the deadline; skipped with the reason when
too little is left) and a hard limit (SIGALRM); one that raises records its error and the others still
run. Writes one JSON (``--out``) and a Markdown table next to it (same name, ``.md``), printed too, for
benchmarks/README.md. Exit status 1 when a section failed or a test failed.

``--dry`` (automatic without CUDA): the same code on the CPU at tiny sizes (ResNet-18 at 128, batch 2, the
scan shapes cut to 32 channels x 128 steps, one timed round, only tests/ops/test_triton_scan.py), in
about 30 s on 2 idle cores (a 300 s deadline, for loaded machines); its numbers check the code, they
measure nothing. The Triton scan runs there only under
``TRITON_INTERPRET=1`` with triton installed. tests/test_gpu_check.py runs it in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

# benchmarks/bench_memory.py: the folder of the script being run is on sys.path
from bench_memory import extra_memory_gib

from handssca.config import LOSS_WEIGHTS, ModelConfig
from handssca.losses import compute_losses
from handssca.model import build_model
from handssca.model.handssca import build_block
from handssca.ops.selective_scan import auto_backend, backend_status, resolve_backend, selective_scan, triton_scan

ROOT = Path(__file__).resolve().parents[1]
SCAN_BACKENDS = ("torch", "triton", "mamba")  # torch: the chunked loop that runs on any device
VARIANTS = ("none", "ssca")  # the network without the block, and with it


@dataclass
class Plan:
    """What one run measures, and how long each section may take (seconds)."""

    device: str
    dry: bool
    backbone: str = "resnet50"
    size: int = 256
    train_batch: int = 32
    amp: bool = True  # bf16 autocast around the network, as train.amp
    scan_batches: tuple[int, ...] = (1, 32)  # timed; errors are checked at the first
    scan_cap: tuple[int, int] | None = None  # dry: (channels, steps) the scan shapes are cut to
    repeats: int = 10  # timed rounds per case (fewer when a section's budget runs out; at least 3)
    warmup: int = 2  # untimed rounds first (the first of them also tells which calls run at all)
    test_paths: tuple[str, ...] = ("tests",)
    deadline_s: float = 450.0
    min_section_s: float = 5.0  # a section starts only with at least this much of the deadline left
    grace_s: float = 10.0  # a section is stopped at 1.5 x its budget + this (within the deadline)
    cpu_threads: int | None = None  # torch and numba threads during the run (dry: 1; None: as they are)
    budgets: dict[str, float] = field(
        default_factory=lambda: {"environment": 15, "tests": 150, "scan": 100, "train": 120, "inference": 45}
    )

    @classmethod
    def for_device(cls, dry: bool, deadline_s: float | None = None) -> Plan:
        if not dry:
            plan = cls(device="cuda", dry=False)
        else:
            plan = cls(
                device="cpu",
                dry=True,
                backbone="resnet18",
                size=128,
                train_batch=2,
                scan_batches=(1, 2),
                scan_cap=(32, 128),
                repeats=1,
                warmup=1,
                # one thread: on a shared, loaded machine two threads' parallel regions wait for each
                # other's time slices (a dry run took 58 s with two threads at load 5 on 2 cores, 15 s with one)
                cpu_threads=1,
                test_paths=("tests/ops/test_triton_scan.py",),
                # generous: a dry run does a fixed small amount of work (~30 s on 2 idle cores), which must
                # finish on a loaded machine too; the budgets only stop one that hangs
                deadline_s=300.0,
                budgets={"environment": 10, "tests": 60, "scan": 60, "train": 90, "inference": 60},
            )
        if deadline_s is not None:
            plan.deadline_s = deadline_s
        return plan


class SectionTimeout(BaseException):
    """A section ran past its hard limit (a BaseException: no ``except Exception`` on the way swallows it)."""


class Budget:
    """The time one section has left (seconds, monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


@contextlib.contextmanager
def hard_limit(seconds: float):
    """Raise SectionTimeout in this (main) thread after ``seconds``; nothing where SIGALRM is missing."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SectionTimeout(f"hard limit of {seconds:.0f} s reached")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """torch's and numba's thread counts set to ``n`` inside, restored after (nothing for None)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        import numba

        old_numba = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # noqa: BLE001 - numba missing or refusing: torch's setting still holds
        numba = None
    try:
        yield
    finally:
        torch.set_num_threads(old)
        if numba is not None:
            numba.set_num_threads(old_numba)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def runnable(fns: dict[str, Callable[[], object]], device: torch.device, errors: dict[str, str]) -> dict:
    """The calls that run once without raising (their first warm-up); the others' errors go in ``errors``
    (out of memory for one backend or variant leaves the rest measured)."""
    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            synchronize(device)
            ok[name] = fn
        except Exception as e:  # noqa: BLE001 - recorded, the others go on
            errors[name] = f"{type(e).__name__}: {e}"[:500]
            _free_memory(device)
    return ok


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, plan: Plan, budget: Budget
) -> dict[str, list[float]]:
    """Seconds of each call, one of each in turn per round, after ``plan.warmup - 1`` more untimed rounds
    (``runnable`` ran the first). Stops after ``plan.repeats`` rounds, or once the budget is spent after
    min(3, repeats) rounds (1 when it was spent before the first)."""
    for _ in range(plan.warmup - 1):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    floor = min(3, plan.repeats) if budget.left() > 0 else 1
    for i in range(plan.repeats):
        if i >= floor and budget.left() <= 0:
            break
        for name, fn in fns.items():
            synchronize(device)
            t = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - t)
    return times


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# --- sections: each takes (plan, budget) and returns a dict for the JSON ---------------------------------


def section_environment(plan: Plan, budget: Budget) -> dict:
    from handssca import __version__

    device = torch.device(plan.device)
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "handssca": __version__,
        "git": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": _version("triton"),
        "mamba_ssm": _version("mamba_ssm", "mamba-ssm"),
        "numba": _version("numba"),
        "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
        "device": str(device),
        "scan_backends": {name: why or "available" for name, why in backend_status().items()},
        "scan_auto": auto_backend(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=props.name,
            capability=f"{props.major}.{props.minor}",
            device_memory_gib=round(props.total_memory / 2**30, 1),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        env.update(device_name=f"CPU ({env['cpu']}, {env['cpu_threads']} threads)", capability=None)
    return env


def _junit_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts, failed


def section_tests(plan: Plan, budget: Budget) -> dict:
    """``pytest -m "gpu or triton"`` in a subprocess, stopped at the section's budget."""
    env = os.environ.copy()
    if plan.dry:  # the interpreter runs the Triton tests in ~40 s: more than a dry run may take
        env.pop("TRITON_INTERPRET", None)
    if plan.cpu_threads is not None:
        env.update(OMP_NUM_THREADS=str(plan.cpu_threads), NUMBA_NUM_THREADS=str(plan.cpu_threads))
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu or triton", *plan.test_paths]
        cmd = [sys.executable, *args, f"--junitxml={xml}"]
        timeout = max(budget.left(), 1.0)
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            tail = (e.stdout or b"")[-1500:]
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            raise TimeoutError(f"pytest did not finish in {timeout:.0f} s; output ends: {tail}") from None
        result: dict = {"command": shlex.join(["python", *args]), "returncode": proc.returncode}
        if xml.exists():
            counts, failed = _junit_counts(xml)
            result.update(counts=counts, failed=failed)
        elif proc.returncode != 5:  # 5: no test was collected
            raise RuntimeError(f"pytest exited {proc.returncode} without a report: {proc.stderr[-1500:]}")
    result["output_tail"] = (proc.stdout + proc.stderr)[-1500:]
    return result


def model_scan_shapes(config: ModelConfig) -> dict[str, dict[str, int]]:
    """The SSCA block's two selective scans for ``config``, read off a built block: name ->
    {dim, length, nstate, groups} (batch aside). Spatial: the 4 directions x d_inner channels over the
    H x W map; channel plane: 4 x W channels over a d_inner x H plane."""
    block = build_block(ModelConfig(**{**asdict(config), "block": "ssca"}).validate())
    ss2d = block.self_attention
    groups = ss2d.x_proj_weight.shape[0]
    side = config.feature_size
    return {
        "spatial": {
            "dim": groups * ss2d.d_inner,
            "length": side * ss2d.width,
            "nstate": ss2d.d_state,
            "groups": groups,
        },
        "channel": {
            "dim": groups * ss2d.width,
            "length": ss2d.d_inner * side,
            "nstate": ss2d.d_state,
            "groups": groups,
        },
    }


def scan_inputs(batch: int, shape: dict[str, int], device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Float32 inputs like the block's: A = -(1..N) per channel (its init), dt = softplus(delta + bias)."""
    g = torch.Generator(device=device).manual_seed(seed)
    dim, length, nstate, groups = shape["dim"], shape["length"], shape["nstate"], shape["groups"]

    def r(*s):
        return torch.randn(*s, generator=g, device=device)

    return {
        "u": r(batch, dim, length),
        "delta": r(batch, dim, length) * 0.5 - 2.0,
        "A": -torch.arange(1, nstate + 1, dtype=torch.float32, device=device).repeat(dim, 1),
        "B": r(batch, groups, nstate, length),
        "C": r(batch, groups, nstate, length),
        "D": torch.ones(dim, device=device),
        "delta_bias": r(dim) * 0.3,
    }


def _scan(backend: str, leaves: dict[str, torch.Tensor], gy: torch.Tensor | None) -> torch.Tensor:
    """One scan, and its backward with output gradient ``gy`` (gradients land in the leaves' .grad)."""
    for t in leaves.values():
        t.grad = None
    with torch.set_grad_enabled(gy is not None):
        y = selective_scan(**leaves, delta_softplus=True, backend=backend, strict=True)
        if gy is not None:
            y.backward(gy)
    return y


def scan_errors(backends: list[str], shape: dict[str, int], device: torch.device) -> list[dict]:
    """Each backend's y and input gradients at batch 1 against the torch backend in float64."""
    args = scan_inputs(1, shape, device, seed=1)
    gy = torch.randn(args["u"].shape, generator=torch.Generator(device=device).manual_seed(2), device=device)
    ref_leaves = {k: v.double().requires_grad_() for k, v in args.items()}
    y_ref = _scan("torch", ref_leaves, gy.double()).detach()
    ref_grads = {k: v.grad for k, v in ref_leaves.items()}
    rows = []
    for backend in backends:
        leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
        try:
            y = _scan(backend, leaves, gy).detach()
        except Exception as e:  # noqa: BLE001 - recorded, the other backends go on
            rows.append({"backend": backend, "error": f"{type(e).__name__}: {e}"[:500]})
            continue
        y_err = float((y.double() - y_ref).abs().max())
        grad, missing = {}, [k for k, v in leaves.items() if v.grad is None]
        for k, ref in ref_grads.items():
            if k in missing:
                continue
            err = float((leaves[k].grad.double() - ref).abs().max())
            grad[k] = {"max_abs": err, "max_rel": err / max(float(ref.abs().max()), 1e-30)}
        worst = max(grad, key=lambda k: grad[k]["max_rel"])
        rows.append(
            {
                "backend": backend,
                "y_max_abs": y_err,
                "y_max_rel": y_err / max(float(y_ref.abs().max()), 1e-30),
                "grad_max_rel": grad[worst]["max_rel"],
                "grad_worst": worst,
                "grad": grad,
                "grad_missing": missing,
            }
        )
        del leaves, y
    return rows


def _loop_bytes(batch: int, shape: dict[str, int]) -> int:
    """A generous bound of the torch backend's forward+backward peak: ~20 float32 tensors of (b, d, l, n)
    (its forward alone keeps about ten for autograd)."""
    return 20 * 4 * batch * shape["dim"] * shape["length"] * shape["nstate"]


def section_scan(plan: Plan, budget: Budget) -> dict:
    device = torch.device(plan.device)
    status = backend_status()
    backends, unavailable = [], {}
    for b in SCAN_BACKENDS:
        why = status[b]
        if why is None and b == "triton" and device.type != "cuda" and triton_scan.interpreter_error():
            why = f"CPU tensors need TRITON_INTERPRET=1: {triton_scan.interpreter_error()}"
        if why is None and b == "mamba" and device.type != "cuda":
            why = "mamba_ssm runs on CUDA only"
        if why is None:
            backends.append(b)
        else:
            unavailable[b] = why
    config = ModelConfig(backbone=plan.backbone, input_size=plan.size)
    shapes = {}
    for name, shape in model_scan_shapes(config).items():
        run = dict(shape)
        if plan.scan_cap is not None:
            run["dim"], run["length"] = min(shape["dim"], plan.scan_cap[0]), min(shape["length"], plan.scan_cap[1])
        shapes[name] = {"model": shape, "run": run}
    result: dict = {"backends": backends, "unavailable": unavailable, "shapes": shapes, "errors": [], "timings": []}
    for name, s in shapes.items():
        if budget.left() <= 0:
            result["errors"].append({"shape": name, "skipped": "section time budget spent"})
            continue
        try:
            for row in scan_errors(backends, s["run"], device):
                result["errors"].append({"shape": name, "batch": 1, **row})
        except Exception as e:  # noqa: BLE001 - the float64 reference failed: the timings still run
            result["errors"].append({"shape": name, "batch": 1, "backend": "torch float64", "error": repr(e)[:500]})
        _free_memory(device)
    for name, s in shapes.items():
        shape = s["run"]
        for batch in plan.scan_batches:
            args = {k: v.requires_grad_() for k, v in scan_inputs(batch, shape, device).items()}
            gy = torch.ones_like(args["u"])
            for mode in ("forward", "forward+backward"):
                case = {"shape": name, "batch": batch, "mode": mode}
                if budget.left() <= 0:
                    result["timings"].append({**case, "skipped": "section time budget spent"})
                    continue
                grad_out = gy if mode == "forward+backward" else None
                fns = {}
                for b in backends:
                    need = _loop_bytes(batch, shape) // (1 if grad_out is not None else 2)
                    if b == "torch" and device.type == "cuda":
                        free = torch.cuda.mem_get_info(device)[0]
                        if need > 0.8 * free:
                            result["timings"].append(
                                {**case, "backend": b, "skipped": f"~{need / 2**30:.0f} GiB of autograd buffers"}
                            )
                            continue
                    fns[b] = lambda b=b, g=grad_out, args=args: _scan(b, args, g)
                failures: dict[str, str] = {}
                fns = runnable(fns, device, failures)
                for b, why in failures.items():
                    result["timings"].append({**case, "backend": b, "error": why})
                times = interleaved(fns, device, plan, budget)
                medians = {b: statistics.median(t) for b, t in times.items()}
                for b, t in medians.items():
                    row = {**case, "backend": b, "median_ms": t * 1e3, "repeats": len(times[b])}
                    if "torch" in medians:
                        row["torch_over_this"] = medians["torch"] / t
                    result["timings"].append(row)
            del args, gy
            _free_memory(device)
    return result


def _batch(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    data = {
        "image": torch.rand(batch, 3, size, size, generator=g),
        "pose": torch.randn(batch, 48, generator=g) * 0.3,
        "betas": torch.randn(batch, 10, generator=g),
        "joints_img": torch.rand(batch, 21, 2, generator=g),
        "valid_mano": torch.ones(batch),
        "valid_joints_img": torch.ones(batch),
    }
    return {k: v.to(device) for k, v in data.items()}


def make_train_step(
    block: str, plan: Plan
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[[], torch.Tensor]]:
    """A fresh ``block`` model and one training step on fixed random data, as the trainer runs it:
    forward under bf16 autocast, the outputs in float32, the paper's losses, backward, Adam."""
    device = torch.device(plan.device)
    torch.manual_seed(0)
    model = build_model({"block": block, "backbone": plan.backbone, "input_size": plan.size}).to(device).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    data = _batch(plan.train_batch, plan.size, device)

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.amp):
            pred = model(data["image"])
        pred = {k: v.float() for k, v in pred.items()}
        losses = compute_losses(pred, data, model.hand, LOSS_WEIGHTS)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        return losses["total"].detach()

    return model, opt, step


def _state_gib(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
    """Parameters, their gradients and the optimiser's state, GiB."""
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters() if p.grad is not None]
    tensors += [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**30


def _step_extra_gib(step: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Peak memory of one call above what was allocated before it (CUDA: the caching allocator's
    max_memory_allocated; CPU: the resident set), and what the call returned."""
    out = []
    if device.type != "cuda":
        return extra_memory_gib(lambda: out.append(step())), out[0]
    _free_memory(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out.append(step())
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**30, out[0]


def section_train(plan: Plan, budget: Budget) -> dict:
    device = torch.device(plan.device)
    parts = {block: make_train_step(block, plan) for block in VARIANTS}
    errors: dict[str, str] = {}
    steps = runnable({block: part[2] for block, part in parts.items()}, device, errors)
    times = interleaved(steps, device, plan, budget)
    rows: dict[str, dict] = {block: {"error": why} for block, why in errors.items()}
    memory_errors: dict[str, str] = {}
    for block in steps:
        model, opt, step = parts[block]
        med = statistics.median(times[block])
        try:
            extra, loss = _step_extra_gib(step, device)
        except Exception as e:  # noqa: BLE001 - the timings stand; the other variant goes on
            extra, loss = float("nan"), float("nan")
            memory_errors[block] = f"{type(e).__name__}: {e}"[:500]
            _free_memory(device)
        state = _state_gib(model, opt)
        rows[block] = {
            "images_per_s": plan.train_batch / med,
            "step_ms": med * 1e3,
            "repeats": len(times[block]),
            "loss_finite": math.isfinite(float(loss)),
            "step_extra_gib": extra,
            "state_gib": state,
            "peak_gib": extra + state,
            "scan_backend": resolve_backend(model.config.scan_backend, device) if block == "ssca" else None,
        }
    result = {
        "batch": plan.train_batch,
        "size": plan.size,
        "backbone": plan.backbone,
        "amp": "bf16" if plan.amp else None,
        "variants": rows,
    }
    if "step_ms" in rows.get("ssca", {}) and "step_ms" in rows.get("none", {}):
        result["ssca_over_none_step"] = rows["ssca"]["step_ms"] / rows["none"]["step_ms"]
    if memory_errors:
        result["memory_errors"] = memory_errors
    return result


def section_inference(plan: Plan, budget: Budget) -> dict:
    device = torch.device(plan.device)
    models = {}
    for block in VARIANTS:
        torch.manual_seed(0)
        models[block] = build_model({"block": block, "backbone": plan.backbone, "input_size": plan.size})
        models[block] = models[block].to(device).eval()
    x = torch.rand(1, 3, plan.size, plan.size, generator=torch.Generator().manual_seed(0)).to(device)
    result: dict = {"batch": 1, "size": plan.size, "backbone": plan.backbone, "precisions": {}}
    for precision in ("float32", "bf16"):
        if budget.left() <= 0:
            result["precisions"][precision] = {"skipped": "section time budget spent"}
            continue

        def forward(model, amp=precision == "bf16"):
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                return model(x)

        errors: dict[str, str] = {}
        fns = runnable({b: lambda m=m: forward(m) for b, m in models.items()}, device, errors)
        times = interleaved(fns, device, plan, budget)
        med = {b: statistics.median(t) * 1e3 for b, t in times.items()}
        row = {"median_ms": med, "repeats": {b: len(t) for b, t in times.items()}, "errors": errors}
        if not errors:
            row["ssca_over_none"] = med["ssca"] / med["none"]
        result["precisions"][precision] = row
    return result


SECTIONS: dict[str, Callable[[Plan, Budget], dict]] = {
    "environment": section_environment,
    "tests": section_tests,
    "scan": section_scan,
    "train": section_train,
    "inference": section_inference,
}


def run_check(
    plan: Plan,
    sections: list[str] | None = None,
    log: Callable[[str], None] = print,
    on_section: Callable[[dict], None] | None = None,
) -> dict:
    """Every section in turn within the plan's deadline; a failing section records its error.
    ``on_section(report so far)`` after each (the command writes its files there: a run killed from
    outside keeps what it measured)."""
    start = time.monotonic()
    report: dict = {
        "check": "benchmarks/gpu.py",
        "dry": plan.dry,
        "plan": asdict(plan),
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sections": {},
    }
    device = torch.device(plan.device)
    for name in sections or list(SECTIONS):
        left = plan.deadline_s - (time.monotonic() - start)
        seconds = min(plan.budgets[name], left)
        if seconds < plan.min_section_s:
            report["sections"][name] = {
                "status": "skipped",
                "reason": f"deadline: {max(left, 0):.0f} s left of {plan.deadline_s:.0f} s",
            }
            log(f"[{name}] skipped: {report['sections'][name]['reason']}")
            continue
        log(f"[{name}] budget {seconds:.0f} s")
        t0 = time.monotonic()
        try:
            # the hard limit: a section's own checks stop it near its budget; this stops one that hangs
            with hard_limit(min(seconds * 1.5 + plan.grace_s, max(left, 0.1))), cpu_threads(plan.cpu_threads):
                entry = {"status": "ok", **SECTIONS[name](plan, Budget(seconds))}
        except (Exception, SectionTimeout) as e:  # noqa: BLE001 - one failing section must not stop the others
            entry = {
                "status": "error",
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()[-3000:],
            }
            log(f"[{name}] error: {entry['error']}")
        entry["seconds"] = round(time.monotonic() - t0, 2)
        report["sections"][name] = entry
        with contextlib.suppress(Exception):
            _free_memory(device)
        report["total_s"] = round(time.monotonic() - start, 2)
        if on_section is not None:
            on_section(report)
    report["total_s"] = round(time.monotonic() - start, 2)
    return report


def _clean(value):
    """JSON-safe: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _f(value, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def markdown(report: dict) -> str:
    """The report as Markdown for benchmarks/README.md."""
    sec = report["sections"]
    env = sec.get("environment", {})
    lines = []
    if report["dry"]:
        title = "CPU dry run (tiny sizes: the code is checked, nothing is measured)"
    else:
        title = f"{env.get('device_name', '?')} (capability {env.get('capability', '?')})"
    lines.append(f"### `benchmarks/gpu.py`: {title}, {env.get('date_utc', report['started_utc'])}")
    lines.append("")
    if env.get("status") == "ok":
        lines.append(
            f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, triton {env['triton'] or 'not installed'}, "
            f"mamba_ssm {env['mamba_ssm'] or 'not installed'}; scan `auto` = {env['scan_auto']}; handssca "
            f"{env['handssca']} ({env['git']}); {report['total_s']:.0f} s in all."
        )
        lines.append("")
    t = sec.get("tests", {})
    if t.get("status") == "ok" and "counts" in t:
        c = t["counts"]
        names = f" (failed: {', '.join(t['failed'])})" if t["failed"] else ""
        lines.append(
            f"Tests, `{t['command']}`: {c['passed']} passed, {c['failures'] + c['errors']} failed, "
            f"{c['skipped']} skipped{names}."
        )
        lines.append("")
    s = sec.get("scan", {})
    if s.get("status") == "ok":
        dims = "; ".join(
            f"{n} (B, {v['run']['dim']}, L={v['run']['length']}, N={v['run']['nstate']}, {v['run']['groups']} groups)"
            for n, v in s["shapes"].items()
        )
        lines.append(
            f"Selective scan at the block's shapes: {dims}. Errors at batch 1 against the torch backend in float64 "
            "(relative: the max abs error over the reference's max abs value; for the gradients, of the worst input):"
        )
        lines.append("")
        lines.append("| scan | backend | y max abs | y max rel | grad max rel (input) |")
        lines.append("|---|---|---|---|---|")
        for r in s["errors"]:
            if "skipped" in r or "error" in r:
                why = f"skipped: {r['skipped']}" if "skipped" in r else f"error: {r['error'][:120]}"
                lines.append(f"| {r['shape']} | {r.get('backend', '-')} | {why} | | |")
                continue
            lines.append(
                f"| {r['shape']} | {r['backend']} | {r['y_max_abs']:.2e} | {r['y_max_rel']:.2e} | "
                f"{r['grad_max_rel']:.2e} ({r['grad_worst']}) |"
            )
        lines.append("")
        lines.append("| scan | batch | pass | backend | median ms | torch / this |")
        lines.append("|---|---|---|---|---|---|")
        for r in s["timings"]:
            head = f"| {r['shape']} | {r['batch']} | {r['mode']} |"
            if "skipped" in r or "error" in r:
                why = f"skipped: {r['skipped']}" if "skipped" in r else f"error: {r['error'][:120]}"
                lines.append(f"{head} {r.get('backend', '-')} | {why} | |")
            else:
                lines.append(f"{head} {r['backend']} | {r['median_ms']:.2f} | {_f(r.get('torch_over_this'), '.2f')}x |")
        if s["unavailable"]:
            lines.append("")
            lines.append("Not run: " + "; ".join(f"{b} ({why})" for b, why in s["unavailable"].items()) + ".")
        lines.append("")
    tr = sec.get("train", {})
    if tr.get("status") == "ok":
        lines.append(
            f"One training step, batch {tr['batch']}, {tr['size']} px, {tr['backbone']}, "
            f"{tr['amp'] or 'float32'} autocast, Adam (interleaved medians):"
        )
        lines.append("")
        lines.append("| variant | images/s | step ms | vs none | peak memory GiB (step + state) |")
        lines.append("|---|---|---|---|---|")
        for block, r in tr["variants"].items():
            if "error" in r:
                lines.append(f"| {block} | error: {r['error'][:120]} | | | |")
                continue
            ratio = tr.get("ssca_over_none_step", 1.0) if block == "ssca" else 1.0
            scan = f" (scan: {r['scan_backend']})" if r["scan_backend"] else ""
            lines.append(
                f"| {block}{scan} | {r['images_per_s']:.1f} | {r['step_ms']:.1f} | {ratio:.2f}x | "
                f"{_f(r['peak_gib'], '.2f')} ({_f(r['step_extra_gib'], '.2f')} + {r['state_gib']:.2f}) |"
            )
        for block, why in tr.get("memory_errors", {}).items():
            lines.append(f"\n{block}: the memory step failed: {why[:200]}")
        lines.append("")
    inf = sec.get("inference", {})
    if inf.get("status") == "ok":
        lines.append(f"Inference, batch 1, {inf['size']} px, {inf['backbone']}, no grad (interleaved medians):")
        lines.append("")
        lines.append("| precision | none ms | ssca ms | ssca / none |")
        lines.append("|---|---|---|---|")
        for precision, r in inf["precisions"].items():
            if "skipped" in r:
                lines.append(f"| {precision} | skipped: {r['skipped']} | | |")
            else:
                m = {b: _f(r["median_ms"].get(b), ".2f") for b in VARIANTS}
                m.update({b: f"error: {why[:80]}" for b, why in r["errors"].items()})
                ratio = _f(r.get("ssca_over_none"), ".2f")
                lines.append(f"| {precision} | {m['none']} | {m['ssca']} | {ratio}{'x' if ratio != '-' else ''} |")
        lines.append("")
    notes = [f"{n}: {e['status']} ({e.get('reason') or e.get('error')})" for n, e in sec.items() if e["status"] != "ok"]
    if notes:
        lines.append("Not measured: " + "; ".join(notes) + ".")
        lines.append("")
    return "\n".join(lines)


def failed(report: dict) -> bool:
    """Whether a section raised or a test failed."""
    sec = report["sections"]
    tests = sec.get("tests", {})
    broken = tests.get("returncode", 0) not in (0, 5)  # 5: nothing collected
    return any(e["status"] == "error" for e in sec.values()) or broken


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu_check.json", help="the JSON (and .md beside it)")
    p.add_argument("--dry", action="store_true", help="CPU, tiny sizes (automatic without CUDA)")
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), help="only these sections")
    p.add_argument("--deadline", type=float, help="seconds for the whole run (450; dry 300)")
    a = p.parse_args(argv)
    dry = a.dry or not torch.cuda.is_available()
    if dry and not a.dry:
        print("# no CUDA device: a dry run on the CPU (tiny sizes, nothing measured)")
    plan = Plan.for_device(dry, a.deadline)
    md = a.out.with_suffix(".md")

    def write(report: dict) -> str:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")
        table = markdown(_clean(report))
        md.write_text(table + "\n")
        return table

    report = run_check(plan, a.sections, log=lambda s: print(f"# {s}", flush=True), on_section=write)
    print(write(report))
    print(f"# wrote {a.out} and {md}")
    return 1 if failed(report) else 0


if __name__ == "__main__":
    sys.exit(main())
