"""Forward latency of every HandSSCA variant at batch 1 (256 input) on this machine, in one run.

python benchmarks/model.py [--repeats 10] [--backbone resnet50]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from handssca.model import BLOCKS, build_model, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    print(
        f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.backbone}, input {args.size}, batch 1, eval mode, no grad"
    )
    x = torch.rand(1, 3, args.size, args.size)
    rows = []
    for block in BLOCKS:
        model = build_model({"block": block, "backbone": args.backbone, "input_size": args.size}).eval()
        with torch.no_grad():
            for _ in range(2):
                model(x)
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        rows.append((block, count_parameters(model)["total"], statistics.median(times)))
    base = rows[0][2]
    print(f"{'variant':16s} {'params':>12s} {'median ms':>10s} {'vs none':>8s}")
    for block, params, t in rows:
        print(f"{block:16s} {params:12,d} {t * 1000:10.1f} {t / base:7.2f}x")


if __name__ == "__main__":
    main()
