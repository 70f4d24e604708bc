"""Training throughput (images/s) and peak memory at batch 16 for the `none` and `ssca` variants.

One process, synthetic random images and labels (no data loading), Adam, the paper's losses.

    python benchmarks/train.py [--size 256] [--backbone resnet50] [--steps 3] [--amp]

``--amp``: bf16 autocast around the network, as ``train.amp: true`` (a large gain on CPUs with
AVX512-BF16 or AMX; the scan and the hand layer stay float32).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

# benchmarks/bench_memory.py: the folder of the script being run is on sys.path
from bench_memory import extra_memory_gib

from handssca.config import LOSS_WEIGHTS
from handssca.losses import compute_losses
from handssca.model import build_model


def measure(block: str, size: int, backbone: str, batch: int, steps: int, amp: bool = False) -> tuple[float, float]:
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

    step()  # warm-up (kernel compilation, allocator)
    elapsed = []

    def timed_steps():
        t = time.perf_counter()
        for _ in range(steps):
            step()
        elapsed.append(time.perf_counter() - t)

    memory = extra_memory_gib(timed_steps)
    return batch * steps / elapsed[0], memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="bf16 autocast (train.amp)")
    a = p.parse_args()
    print(
        f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {a.backbone}, "
        f"input {a.size}, batch {a.batch}, {a.steps} timed steps after one warm-up{', bf16 autocast' if a.amp else ''}"
    )
    print(f"{'variant':8s} {'images/s':>9s} {'peak extra memory':>18s}")
    rows = {}
    for block in ("none", "ssca"):
        rows[block] = measure(block, a.size, a.backbone, a.batch, a.steps, a.amp)
        print(f"{block:8s} {rows[block][0]:9.2f} {rows[block][1]:15.2f} GiB")
    print(f"ssca / none throughput: {rows['ssca'][0] / rows['none'][0]:.2f}")


if __name__ == "__main__":
    main()
