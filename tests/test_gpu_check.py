"""benchmarks/gpu.py, the one-command GPU check, in its CPU dry mode: every section runs and writes sane
numbers, and a section that raises or hangs is recorded while the others still run."""

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def gpu():
    sys.path.insert(0, str(BENCH))  # the script imports bench_memory from its own folder
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", BENCH / "gpu.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclass looks its module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def dry_run(gpu, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "check.json"
    threads, start = torch.get_num_threads(), time.monotonic()
    status = gpu.main(["--dry", "--out", str(out)])
    seconds = time.monotonic() - start
    assert torch.get_num_threads() == threads  # the dry run's one thread is given back
    return status, json.loads(out.read_text()), out.with_suffix(".md").read_text(), seconds


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_dry_run_writes_every_section_with_sane_numbers(dry_run, gpu):
    status, report, table, seconds = dry_run
    assert status == 0 and report["dry"] is True
    assert seconds < report["plan"]["deadline_s"]
    sec = report["sections"]
    assert list(sec) == list(gpu.SECTIONS)
    assert all(s["status"] == "ok" for s in sec.values()), {n: s.get("error") for n, s in sec.items()}

    env = sec["environment"]
    assert env["torch"] and env["device"] == "cpu" and env["scan_auto"] in ("numba", "torch")

    tests = sec["tests"]
    assert "gpu or triton" in tests["command"]
    if "counts" in tests:  # no report only when nothing was collected
        c = tests["counts"]
        assert c["failures"] == c["errors"] == 0 and c["passed"] + c["skipped"] == c["tests"]

    scan = sec["scan"]
    assert set(scan["shapes"]) == {"spatial", "channel"}
    # the block's real shapes at ResNet-18 128 (feature map 16 x 16, d_inner 512, N 16, 4 directions)
    assert scan["shapes"]["spatial"]["model"] == {"dim": 2048, "length": 256, "nstate": 16, "groups": 4}
    assert scan["shapes"]["channel"]["model"] == {"dim": 64, "length": 8192, "nstate": 16, "groups": 4}
    if "triton" not in scan["backends"]:
        assert "triton" in scan["unavailable"] and "mamba" in scan["unavailable"]
    torch_rows = [r for r in scan["errors"] if r.get("backend") == "torch"]
    assert len(torch_rows) == 2
    for r in torch_rows:  # float32 against float64 of the same loop: rounding only
        assert 0 <= r["y_max_rel"] < 1e-5 and 0 <= r["grad_max_rel"] < 1e-4
    timed = [r for r in scan["timings"] if "median_ms" in r]
    assert {(r["shape"], r["batch"], r["mode"]) for r in timed} == {
        (s, b, m) for s in ("spatial", "channel") for b in (1, 2) for m in ("forward", "forward+backward")
    }
    assert all(finite_positive(r["median_ms"]) and finite_positive(r["torch_over_this"]) for r in timed)

    train = sec["train"]
    assert train["batch"] == 2 and train["amp"] == "bf16"
    for block in ("none", "ssca"):
        r = train["variants"][block]
        assert r["loss_finite"] and finite_positive(r["images_per_s"]) and finite_positive(r["state_gib"])
        assert r["peak_gib"] is None or r["peak_gib"] >= r["state_gib"]
    assert finite_positive(train["ssca_over_none_step"])

    for precision in ("float32", "bf16"):
        r = sec["inference"]["precisions"][precision]
        assert not r["errors"] and finite_positive(r["ssca_over_none"])
        assert all(finite_positive(r["median_ms"][b]) for b in ("none", "ssca"))

    for heading in ("CPU dry run", "| scan | backend |", "| variant | images/s |", "| precision | none ms |"):
        assert heading in table


def test_a_failing_or_hanging_section_is_recorded_and_the_others_run(gpu, monkeypatch):
    def broken(plan, budget):
        raise RuntimeError("out of memory (injected)")

    def hangs(plan, budget):
        time.sleep(30)

    monkeypatch.setitem(gpu.SECTIONS, "scan", broken)
    monkeypatch.setitem(gpu.SECTIONS, "train", hangs)
    plan = gpu.Plan.for_device(dry=True)
    plan.grace_s, plan.min_section_s, plan.budgets = 0.0, 0.1, {**plan.budgets, "train": 0.2}
    report = gpu.run_check(plan, ["scan", "train", "environment"], log=lambda s: None)
    sec = report["sections"]
    assert sec["scan"]["status"] == "error" and "injected" in sec["scan"]["error"]
    assert sec["train"]["status"] == "error" and "hard limit" in sec["train"]["error"]
    assert sec["train"]["seconds"] < 5
    assert sec["environment"]["status"] == "ok" and sec["environment"]["torch"]
    assert gpu.failed(report)
    assert "scan: error" in gpu.markdown(gpu._clean(report))

    plan.deadline_s = 0.0  # out of time: skipped with the reason, nothing started
    report = gpu.run_check(plan, ["environment"], log=lambda s: None)
    assert report["sections"]["environment"] == {"status": "skipped", "reason": "deadline: 0 s left of 0 s"}


def test_a_call_that_raises_is_left_out_of_the_timings_with_its_error(gpu):
    plan = gpu.Plan.for_device(dry=True)
    errors = {}

    def oom():
        raise RuntimeError("CUDA out of memory (injected)")

    fns = gpu.runnable({"fine": lambda: None, "oom": oom}, torch.device("cpu"), errors)
    times = gpu.interleaved(fns, torch.device("cpu"), plan, gpu.Budget(10))
    assert list(times) == ["fine"] and len(times["fine"]) == plan.repeats
    assert errors == {"oom": "RuntimeError: CUDA out of memory (injected)"}
