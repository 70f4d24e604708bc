"""Training throughput (images/s) and peak memory at batch 16 for the `none` and `ssca` variants.

One process, synthetic random images and labels (no data loading), Adam, the paper's losses. The
variants' steps are timed interleaved (none, ssca, none, ssca, ...) so that a machine whose load
changes during the run slows both alike; the peak extra memory of one step of each is measured
after the timed steps.

    python benchmarks/train.py [--size 256] [--backbone resnet50] [--steps 3] [--amp] [--blocks none ssca]

``--amp``: bf16 autocast around the network, as ``train.amp: true`` (a large gain on CPUs with
AVX512-BF16 or AMX; the scan and the hand layer stay float32).

The script starts itself with the malloc tunables the ``handssca`` command uses (``handssca.allocator``;
``HANDSSCA_MALLOC=system`` keeps glibc's defaults). The header names the allocator; each variant's
system CPU time and minor page faults per timed step are printed: with glibc's defaults every tensor over
32 MiB is a fresh ``mmap`` whose pages fault in on first touch at each step (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

# benchmarks/bench_memory.py: the folder of the script being run is on sys.path
from bench_memory import extra_memory_gib

from handssca.allocator import reexec_with_tunables
from handssca.config import LOSS_WEIGHTS
from handssca.losses import compute_losses
from handssca.model import build_model


def make_step(block: str, size: int, backbone: str, batch: int, amp: bool = False):
    """One training step of a fresh ``block`` model on fixed random data, as a function."""
    torch.manual_seed(0)
    model = build_model({"block": block, "input_size": size, "backbone": backbone}).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    data = {
        "image": torch.rand(batch, 3, size, size),
        "pose": torch.randn(batch, 48) * 0.3,
        "betas": torch.randn(batch, 10),
        "joints_img": torch.rand(batch, 21, 2),
        "valid_mano": torch.ones(batch),
        "valid_joints_img": torch.ones(batch),
    }

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            pred = model(data["image"])
        losses = compute_losses(pred, data, model.hand, LOSS_WEIGHTS)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()

    return step


def allocator() -> str:
    """The malloc this process runs with: a preloaded jemalloc or tcmalloc, else glibc's (and its tunables)."""
    maps = Path("/proc/self/maps")
    text = maps.read_text() if maps.exists() else ""
    for name in ("jemalloc", "tcmalloc"):
        if name in text:
            return name
    if not maps.exists():
        return "unknown"
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return f"glibc malloc ({'GLIBC_TUNABLES=' + tunables if 'glibc.malloc' in tunables else 'defaults'})"


def main() -> None:
    reexec_with_tunables()  # as the `handssca` command starts (HANDSSCA_MALLOC=system: glibc's defaults)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument(
        "--warmup", type=int, default=2, help="untimed steps of each variant first (the heap grows over the first two)"
    )
    p.add_argument("--amp", action="store_true", help="bf16 autocast (train.amp)")
    p.add_argument("--blocks", nargs="+", default=["none", "ssca"])
    a = p.parse_args()
    print(
        f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {a.backbone}, "
        f"input {a.size}, batch {a.batch}, {a.steps} timed steps each (interleaved) after {a.warmup} warm-up"
        f"{', bf16 autocast' if a.amp else ''}, allocator: {allocator()}"
    )
    steps = {block: make_step(block, a.size, a.backbone, a.batch, a.amp) for block in a.blocks}
    for _ in range(a.warmup):
        for step in steps.values():
            step()  # warm-up (kernel compilation, Adam's state, the allocator's heap)
    times = {block: [] for block in steps}
    system = dict.fromkeys(steps, 0.0)  # kernel CPU time (page faults, mmap) during the timed steps
    faults = dict.fromkeys(steps, 0)  # minor page faults during the timed steps
    for _ in range(a.steps):
        for block, step in steps.items():
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t = time.perf_counter()
            step()
            times[block].append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            system[block] += r1.ru_stime - r0.ru_stime
            faults[block] += r1.ru_minflt - r0.ru_minflt
    memory = {block: extra_memory_gib(step) for block, step in steps.items()}
    print(
        f"{'variant':8s} {'images/s':>9s} {'step s (median)':>16s} {'steps s':>24s} {'system CPU s/step':>18s} "
        f"{'page faults/step':>17s} {'peak extra memory':>18s}"
    )
    rate = {}
    for block in steps:
        med = statistics.median(times[block])
        rate[block] = a.batch / med
        all_steps = " ".join(f"{t:.1f}" for t in times[block])
        sys_step = system[block] / len(times[block])
        flt = faults[block] / len(times[block])
        print(
            f"{block:8s} {rate[block]:9.2f} {med:16.2f} {all_steps:>24s} {sys_step:18.2f} {flt:17.0f} "
            f"{memory[block]:15.2f} GiB"
        )
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if "none" in rate and "ssca" in rate:
        print(
            f"ssca step / none step: {rate['none'] / rate['ssca']:.2f}x (throughput ratio {rate['ssca'] / rate['none']:.2f})"
        )


if __name__ == "__main__":
    main()
