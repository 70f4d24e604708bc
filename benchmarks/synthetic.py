"""Synthetic data generation speed: samples per second per core at 256x256 (and the renderer used).

python benchmarks/synthetic.py [--size 256] [--count 60] [--rounds 5]

One torch thread. Per core = per CPU-second of this process, all its threads included (llvmpipe
rasterises on its own threads), so the rate does not depend on how many cores llvmpipe borrowed;
the wall-clock rate is printed next to it. Each round times ``count`` train samples (augmented, all
occluder kinds, camera effects) after a warm-up that uploads the photos; the median round is reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from handssca.data.synthetic import SyntheticHands
from handssca.render.gl import gl_available


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=60)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    ok, name = gl_available()
    print(f"# {platform.machine()}, one torch thread, crop {a.size}x{a.size}, renderer: {name if ok else 'numpy'}")
    for renderer in ("gl", "numpy") if ok else ("numpy",):
        ds = SyntheticHands("train", 100_000, seed=0, image_size=a.size, renderer=renderer)
        n = a.count if renderer == "gl" else max(4, a.count // 10)
        rounds = a.rounds if renderer == "gl" else 1
        for i in range(50_000, 50_000 + (40 if renderer == "gl" else 2)):  # warm-up: hand, context, photos
            ds[i]
        cpu_rates, wall_rates = [], []
        for r in range(rounds):
            t, c = time.perf_counter(), time.process_time()
            for i in range(r * n, (r + 1) * n):
                ds[i]
            cpu_rates.append(n / (time.process_time() - c))
            wall_rates.append(n / (time.perf_counter() - t))
        cpu, wall = statistics.median(cpu_rates), statistics.median(wall_rates)
        rounds_txt = " ".join(f"{x:.1f}" for x in cpu_rates)
        print(
            f"{renderer:6s} {cpu:7.2f} samples/s per core ({1000 / cpu:.1f} ms CPU per sample; rounds: {rounds_txt}),"
            f" {wall:.2f} samples/s wall-clock"
        )


if __name__ == "__main__":
    main()
