"""Synthetic data generation speed: samples per second per core at 256x256 (and the renderer used).

python benchmarks/synthetic.py [--size 256] [--count 40]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from handssca.data.synthetic import SyntheticHands
from handssca.render.gl import gl_available


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--count", type=int, default=40)
    a = p.parse_args()
    torch.set_num_threads(1)
    ok, name = gl_available()
    print(f"# {platform.machine()}, one thread, crop {a.size}x{a.size}, renderer: {name if ok else 'numpy'}")
    for renderer in ("gl", "numpy") if ok else ("numpy",):
        ds = SyntheticHands("train", a.count, seed=0, image_size=a.size, renderer=renderer)
        ds[0]  # warm-up: hand model, GL context, photos
        n = a.count if renderer == "gl" else max(4, a.count // 10)
        t = time.perf_counter()
        for i in range(1, n):
            ds[i]
        rate = (n - 1) / (time.perf_counter() - t)
        print(f"{renderer:6s} {rate:7.2f} samples/s per core ({1000 / rate:.0f} ms per sample)")


if __name__ == "__main__":
    main()
