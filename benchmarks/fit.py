"""The landmark fit's cost, and a one-hand photo end to end with and without it, in one run.

python benchmarks/fit.py [--rounds 30] [--backbone resnet50] [--size 256]

Rows, medians over interleaved rounds: ``fit_hand`` on one hand and on four hands at once (the
detections of photo-like synthetic renders shipped in ``scripts/data``: real landmark-network outputs),
per hand; posing the fitted mesh; then ``HandReconstructor.reconstruct_all`` on a 640 x 480 photo with one
rendered hand (detection, the network at ``--size``, placement) with ``refine="landmarks"`` and with
``refine=None``, the network run as ``handssca predict`` runs it (``inference_copy`` at ``--precision``,
default auto: bf16 on a CPU with native bf16); and, for the ratios, the same photo with the `none` block's
network run the same way and with the plain float32 network (``--precision`` as before issue #27). The
network is untrained (its weights do not change its cost).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handssca.environment import cpu_has_bf16  # noqa: E402
from handssca.fit import FitModel, fit_hand  # noqa: E402
from handssca.hand import HandModel  # noqa: E402
from handssca.inference import HandReconstructor  # noqa: E402
from handssca.model.handssca import build_model  # noqa: E402
from handssca.model.inference_copy import inference_copy, resolve_precision  # noqa: E402
from handssca.model.runner import TorchRunner  # noqa: E402
from tests.detect.hand_images import render_right_hand  # noqa: E402


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with np.load(ROOT / "scripts" / "data" / "landmark_calibration_default_hand.npz") as z:
        kp2d, kp3d, K = z["keypoints_2d"], z["keypoints_3d"], z["K"]
    hand = HandModel.default(dtype=torch.float64)
    fm = FitModel.from_hand(hand)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    dtype = resolve_precision(args.precision, cpu, cpu_has_bf16())

    def reconstructor(network, copy: bool) -> HandReconstructor:
        runner = TorchRunner(inference_copy(network, dtype) if copy else network, cpu)
        return HandReconstructor(runner, network.hand.faces, args.size)

    model = build_model({"input_size": args.size, "backbone": args.backbone}).eval()
    rec = reconstructor(model, True)
    none = reconstructor(
        build_model({"input_size": args.size, "backbone": args.backbone, "block": "none"}).eval(), True
    )
    plain = reconstructor(model, False)
    photo = np.full((480, 640, 3), 140, np.uint8)
    photo[100:356, 200:456] = render_right_hand(size=256, roll_deg=-15.0, palm=True)[0]
    for r in (rec, none, plain):  # warm up: detector, kernels, the fit model
        r.reconstruct_all(photo)
    rec.reconstruct_all(photo, refine=None)
    none.fitter, plain.fitter  # noqa: B018 - built before timing
    res = fit_hand(fm, kp2d[:1], K[0], kp3d[:1])
    pose_mesh = rec.fitter[1]

    def mesh():
        with torch.no_grad():
            pose_mesh(
                global_orient=torch.from_numpy(res.pose[:, :3]),
                hand_pose=torch.from_numpy(res.pose[:, 3:]),
                betas=torch.from_numpy(res.betas),
                transl=torch.from_numpy(res.transl),
            )

    times: dict[str, list[float]] = {k: [] for k in ("fit1", "fit4", "mesh", "refined", "network", "none", "plain")}
    iterations = []
    n = len(kp2d)
    for r in range(args.rounds):
        i = (4 * r) % (n - 4)
        times["fit1"].append(timed(lambda: fit_hand(fm, kp2d[i : i + 1], K[i], kp3d[i : i + 1])))
        got = []
        times["fit4"].append(
            timed(lambda: got.append(fit_hand(fm, kp2d[i : i + 4], K[i : i + 4], kp3d[i : i + 4]))) / 4
        )
        iterations += got[0].iterations.tolist()
        times["mesh"].append(timed(mesh))
        times["refined"].append(timed(lambda: rec.reconstruct_all(photo)))
        times["network"].append(timed(lambda: rec.reconstruct_all(photo, refine=None)))
        times["none"].append(timed(lambda: none.reconstruct_all(photo)))
        times["plain"].append(timed(lambda: plain.reconstruct_all(photo)))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"the network in {str(dtype).replace('torch.', '')} (--precision {args.precision})"
    )
    print(
        f"{args.rounds} interleaved rounds; fits of the shipped detections ({np.mean(iterations):.1f} steps on average)"
    )
    print("| case | median ms |\n|---|---|")
    print(f"| fit_hand, one hand | {ms['fit1']:.1f} |")
    print(f"| fit_hand, four hands at once, per hand | {ms['fit4']:.1f} |")
    print(f"| the fitted mesh posed (hand layer, float64) | {ms['mesh']:.1f} |")
    print(f"| one-hand 640x480 photo: detect + network ({args.backbone}, {args.size}) + fit | {ms['refined']:.0f} |")
    print(f"| the same without the fit (refine=None) | {ms['network']:.0f} |")
    print(f"| the same with the `none` block (no SSCA) | {ms['none']:.0f} |")
    print(f"| the same with the plain float32 network (before #27) | {ms['plain']:.0f} |")
    print(f"fit's share of the photo: {ms['refined'] - ms['network']:.1f} ms ({ms['refined'] / ms['network']:.2f}x)")
    print(
        f"photo with ssca / with none: {ms['refined'] / ms['none']:.2f}x; plain float32 / now: {ms['plain'] / ms['refined']:.2f}x"
    )


if __name__ == "__main__":
    main()
