"""Forward latency of every HandSSCA variant at batch 1 (256 input) on this machine, in one run.

    python benchmarks/model.py [--repeats 10] [--backbone resnet50] [--onnx]

Variants are timed interleaved (one forward of each in turn, repeated), so that a machine whose
load changes during the run slows them alike; medians and ratios to `none` are printed.
``--onnx``: also export `none` and `ssca` to ONNX (`handssca.export`) and time them with
onnxruntime (CPU, as many threads as torch uses), interleaved with the PyTorch runs.
``--precision float32 bfloat16``: also time `none` and `ssca` as ``handssca.model.inference_copy`` makes them
for inference (BatchNorm folded, channels-last, the backbone in that precision), interleaved.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from handssca.model import BLOCKS, build_model, count_parameters
from handssca.model.inference_copy import inference_copy


def onnx_session(model, tmp: Path, name: str):
    """An onnxruntime session of ``model`` exported through ``handssca.export`` (and its node count)."""
    import onnx
    import onnxruntime as ort

    from handssca.export import export_model
    from handssca.model.checkpoint import checkpoint_dict, save_checkpoint

    ckpt = save_checkpoint(tmp / f"{name}.pt", checkpoint_dict(model))
    path = export_model(ckpt, tmp / f"{name}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, len(onnx.load(str(path)).graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--onnx", action="store_true", help="also time the ONNX exports of none and ssca")
    parser.add_argument("--blocks", nargs="*", default=list(BLOCKS))
    parser.add_argument(
        "--precision", nargs="*", default=[], choices=["float32", "bfloat16"], help="also time inference copies"
    )
    args = parser.parse_args()
    print(
        f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.backbone}, input {args.size}, batch 1, eval mode, no grad, interleaved"
    )
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.size, args.size)
    runs, params, nodes = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for block in args.blocks:
            model = build_model({"block": block, "backbone": args.backbone, "input_size": args.size}).eval()
            params[block] = count_parameters(model)["total"]
            runs[block] = lambda model=model: model(x)
            for precision in args.precision if block in ("none", "ssca") else ():
                copy = inference_copy(model, getattr(torch, precision))
                params[f"{block} {precision}"] = params[block]
                runs[f"{block} {precision}"] = lambda copy=copy: copy(x)
            if args.onnx and block in ("none", "ssca"):
                session, nodes[f"onnx {block}"] = onnx_session(model, Path(tmp), block)
                feed = {"images": x.numpy().astype(np.float32)}
                runs[f"onnx {block}"] = lambda session=session, feed=feed: session.run(None, feed)
        times = {name: [] for name in runs}
        with torch.no_grad():
            for fn in runs.values():  # warm-up (kernel compilation, allocator)
                fn()
                fn()
            for _ in range(args.repeats):
                for name, fn in runs.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
    medians = {name: statistics.median(v) for name, v in times.items()}
    print(f"{'variant':18s} {'params':>12s} {'median ms':>10s} {'min ms':>8s} {'vs none':>8s} {'vs onnx none':>13s}")
    for name, t in medians.items():
        p = f"{params[name]:12,d}" if name in params else f"{nodes[name]:7d} nodes"
        # against `none` run the same way (plain, an inference copy of that precision, or ONNX)
        base = {"onnx": "onnx none"}.get(name.split()[0], " ".join(["none", *name.split()[1:]]))
        vs_none = f"{t / medians[base]:7.2f}x" if base in medians else ""
        vs_onnx = f"{t / medians['onnx none']:12.2f}x" if "onnx none" in medians else ""
        print(f"{name:18s} {p:>12s} {t * 1000:10.1f} {min(times[name]) * 1000:8.1f} {vs_none:>8s} {vs_onnx:>13s}")


if __name__ == "__main__":
    main()
