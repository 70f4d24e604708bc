"""Selective-scan speed: every available backend against `reference`, in one process.

Shapes are HandSSCA's two scans at 256x256 input: spatial (B, 4x512, L=1024, N=16) and channel
plane (B, 4x32, L=16384, N=16), both with 4 groups of B/C, D, delta_bias and softplus.
Prints medians and ratios to `reference`, the extra memory of batch-16 forward+backward, and the
floor: exp over every (b, d, l, n) element plus one copy of the inputs at this machine's rates.
Then the SSCA block's whole 4-direction cross-scan (projections, the four orders, the sum back) at
batch 1: unfused (copies, flips, one numba scan) against the fused numba kernels, interleaved.
``--device cuda``: the GPU backends (torch, triton, mamba when installed) on CUDA tensors instead.

    python benchmarks/scan.py [--repeats 5] [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

# benchmarks/bench_memory.py: the folder of the script being run is on sys.path
from bench_memory import extra_memory_gib

from handssca.ops import backend_status, selective_scan

SHAPES = {"spatial": (2048, 1024), "channel": (128, 16384)}
NSTATE, GROUPS = 16, 4


DEVICE = torch.device("cpu")


def make_inputs(batch: int, dim: int, length: int, grad: bool, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, length, generator=g)
    delta = torch.randn(batch, dim, length, generator=g) * 0.5 - 2.0
    A = -torch.arange(1, NSTATE + 1, dtype=torch.float32).repeat(dim, 1)
    B = torch.randn(batch, GROUPS, NSTATE, length, generator=g)
    C = torch.randn(batch, GROUPS, NSTATE, length, generator=g)
    D = torch.ones(dim)
    bias = torch.randn(dim, generator=g) * 0.3
    out = [t.to(DEVICE) for t in (u, delta, A, B, C, D, bias)]
    return [t.requires_grad_() for t in out] if grad else out


def run(backend: str, args: list[torch.Tensor], backward: bool) -> None:
    y = selective_scan(*args, delta_softplus=True, backend=backend, strict=True)
    if backward:
        y.backward(torch.ones_like(y))
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def cross_scan_rows(repeats: int) -> None:
    """The block's 4-direction scan at batch 1: unfused (numba scan) vs fused, interleaved."""
    from handssca.model.ssca import cross_scan_fused, cross_scan_unfused

    print(f"{'shape':8s} {'case':18s} {'cross-scan':10s} {'median s':>10s} {'vs unfused':>13s}")
    for shape, (c, h, w) in {"spatial": (512, 32, 32), "channel": (32, 512, 32)}.items():
        g = torch.Generator().manual_seed(0)
        rank = 16
        x = torch.randn(1, c, h, w, generator=g)
        params = [
            torch.randn(4, rank + 2 * NSTATE, c, generator=g) / c**0.5,
            torch.randn(4, c, rank, generator=g) / rank**0.5,
            torch.randn(4, c, generator=g) * 0.3 - 3,
            torch.log(torch.arange(1, NSTATE + 1, dtype=torch.float32)).repeat(4 * c, 1),
            torch.ones(4 * c),
        ]
        for case, backward in (("b1 fwd", False), ("b1 fwd+bwd", True)):
            xs = x.clone().requires_grad_(backward)
            ps = [p.clone().requires_grad_(backward) for p in params]
            fns = {
                "unfused": lambda: cross_scan_unfused(xs, *ps, backend="numba"),
                "fused": lambda: cross_scan_fused(xs, *ps),
            }
            times = {k: [] for k in fns}
            for _ in range(repeats + 1):
                for k, fn in fns.items():
                    t = time.perf_counter()
                    with torch.set_grad_enabled(backward):
                        y = fn()
                        if backward:
                            y.sum().backward()
                    times[k].append(time.perf_counter() - t)
            med = {k: statistics.median(v[1:]) for k, v in times.items()}
            for k, t in med.items():
                print(f"{shape:8s} {case:18s} {k:10s} {t:10.4f} {med['unfused'] / t:12.2f}x")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, allocator)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def floor_seconds(batch: int, dim: int, length: int) -> float:
    """exp over b*d*l*n elements plus one copy of the inputs, at rates measured now."""
    buf = torch.randn(2**24)
    out = torch.empty_like(buf)
    exp_rate = buf.numel() / median_time(lambda: torch.exp(buf, out=out), 5)
    copy_rate = buf.numel() * 4 / median_time(lambda: out.copy_(buf), 5)
    input_bytes = 4 * (2 * batch * dim * length + 2 * batch * GROUPS * NSTATE * length)
    return batch * dim * length * NSTATE / exp_rate + input_bytes / copy_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip batch 16")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU backends")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    status = backend_status()
    if DEVICE.type == "cuda":
        backends = [b for b in ("torch", "triton", "mamba") if status[b] is None]
    else:
        backends = [b for b, why in status.items() if why is None and b not in ("mamba", "triton", "export")]
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    for b, why in status.items():
        print(f"#   {b:9s} {'available' if why is None else 'unavailable: ' + why}")
    header = f"{'shape':8s} {'case':18s} {'backend':10s} {'median s':>10s} {'vs reference':>13s} {'vs floor':>9s}"
    print(header)
    print("-" * len(header))
    for shape, (dim, length) in SHAPES.items():
        for case, batch, backward in (("b1 fwd", 1, False), ("b1 fwd+bwd", 1, True), ("b16 fwd+bwd", 16, True)):
            if batch == 16 and args.quick:
                continue
            floor = floor_seconds(batch, dim, length)
            inputs = make_inputs(batch, dim, length, backward)
            ref_time = None
            for backend in backends:
                if backend == "reference" and batch > 1:
                    print(f"{shape:8s} {case:18s} {backend:10s} {'skipped (memory: autograd keeps every step)':>10s}")
                    continue
                if backend == "torch" and batch > 1 and backward:
                    print(f"{shape:8s} {case:18s} {backend:10s} {'skipped (> 8 GB of autograd buffers)':>10s}")
                    continue
                t = median_time(
                    lambda: run(backend, inputs, backward),
                    args.repeats if backend != "reference" else min(args.repeats, 5),
                )
                if backend == "reference":
                    ref_time = t
                ratio = f"{ref_time / t:12.1f}x" if ref_time else f"{'-':>13s}"
                print(f"{shape:8s} {case:18s} {backend:10s} {t:10.4f} {ratio} {t / floor:8.2f}x")
            if batch == 16 and DEVICE.type == "cpu":
                for backend in backends:
                    if backend in ("reference", "torch"):
                        continue
                    mem = extra_memory_gib(lambda: run(backend, make_inputs(batch, dim, length, True, 1), True))
                    print(f"{shape:8s} {case:18s} {backend:10s} extra memory {mem:.2f} GiB")
            print(f"{shape:8s} {case:18s} {'floor':10s} {floor:10.4f}")
    if DEVICE.type == "cpu" and status["numba"] is None:
        cross_scan_rows(args.repeats)


if __name__ == "__main__":
    main()
