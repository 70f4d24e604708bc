"""Hand detection and whole-photo prediction latency on this machine, in one run.

python benchmarks/detect.py [--repeats 20] [--backbone resnet50] [--size 640x480]

Rows: the palm detector (192 x 192 input, letterbox included), the landmark network per hand (224 x 224
crop included), the whole detection of an image with one and with two hands, then per hand: the
HandSSCA network (batch 1, 256 input) and the files ``handssca predict`` writes (.obj, .ply, .json,
overlay and side-view pictures). When ``ai-edge-litert`` is installed the same two networks also run
under the TFLite runtime (XNNPACK, same thread count) as a yardstick, timed after the PyTorch cases.
The pictures are hands rendered from the package's own hand (``tests/detect/hand_images.py``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handssca.detect import HandDetector  # noqa: E402
from handssca.detect.detector import LANDMARK_INPUT  # noqa: E402
from handssca.detect.rects import crop_matrix, warp_crop  # noqa: E402
from tests.detect.hand_images import render_right_hand  # noqa: E402


def photo(width: int, height: int, hands: int) -> np.ndarray:
    """A width x height grey picture with 1 or 2 rendered hands (a right one, and a mirrored left one)."""
    img = np.full((height, width, 3), 140, np.uint8)
    side = min(height, width // 2)
    a = render_right_hand(size=side, roll_deg=-10.0)[0]
    img[:side, :side] = a
    if hands == 2:
        b = render_right_hand(size=side, roll_deg=-30.0)[0][:, ::-1]
        img[:side, width - side :] = b
    return img


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--size", default="640x480", help="photo width x height")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    threads = torch.get_num_threads()
    print(f"# {platform.machine()}, torch {torch.__version__}, {threads} threads, photo {w}x{h}, batch 1")
    # the palm detector scores the package's stylised hand low (0.3-0.9): a lower threshold so that every
    # rendered hand counts; the work timed is the same
    det = HandDetector(min_palm_score=0.25)
    one, two = photo(w, h, 1), photo(w, h, 2)
    hands = det(two)
    assert len(hands) == 2 and len(det(one)) == 1, "the benchmark pictures must show their hands"
    rows: list[tuple[str, float]] = []

    def crops(image):
        mats = [crop_matrix(hd.rect, LANDMARK_INPUT, LANDMARK_INPUT) for hd in hands]
        return np.stack([warp_crop(image, M, LANDMARK_INPUT, LANDMARK_INPUT, "nearest") for M in mats])

    timings = {
        "palm detector (letterbox + network + decoding)": lambda: det.palm_rects(two),
        "landmarks, one hand (crop + network)": lambda: det.landmarks(two, [hands[0].rect]),
        "landmarks, two hands (one batch)": lambda: det.landmarks(two, [hd.rect for hd in hands]),
        "detection, photo with one hand": lambda: det(one),
        "detection, photo with two hands": lambda: det(two),
    }
    ref = None
    try:
        from ai_edge_litert.interpreter import Interpreter

        root = Path(__file__).resolve().parents[1] / "third_party" / "mediapipe"
        ref = {}
        for name, f in (("palm", "palm_detection_full"), ("landmark", "hand_landmark_full")):
            it = Interpreter(model_path=str(root / f"{f}.tflite"), num_threads=threads)
            it.allocate_tensors()
            ref[name] = it
    except Exception as e:  # absent or unloadable: no yardstick
        print(f"# (no TFLite yardstick: {type(e).__name__})")
    palm_in = np.random.default_rng(0).random((1, 192, 192, 3), dtype=np.float32)
    lm_in = crops(two)[:1]
    timings["palm network alone (PyTorch)"] = lambda: det._run(det.palm, palm_in)
    timings["landmark network alone (PyTorch)"] = lambda: det._run(det.landmark, lm_in)
    if ref:

        def run_ref(it, x):
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()

        timings["palm network alone (TFLite XNNPACK)"] = lambda: run_ref(ref["palm"], palm_in)
        timings["landmark network alone (TFLite XNNPACK)"] = lambda: run_ref(ref["landmark"], lm_in)
    # interleaved: every case once per round. The TFLite yardstick runs in a second group: XNNPACK's
    # threads keep spinning after an invoke and slowed the PyTorch case timed right after them by ~30%.
    yardstick = {k: timings.pop(k) for k in list(timings) if "TFLite" in k}
    for group in (timings, yardstick):
        samples: dict[str, list[float]] = {k: [] for k in group}
        for fn in group.values():
            fn()
        for _ in range(args.repeats):
            for k, fn in group.items():
                t = time.perf_counter()
                fn()
                samples[k].append(1000 * (time.perf_counter() - t))
        rows += [(k, statistics.median(v)) for k, v in samples.items()]

    from handssca.inference import HandReconstructor
    from handssca.io.images import ScaledImage
    from handssca.model import build_model
    from handssca.model.runner import TorchRunner
    from handssca.outputs import save_prediction
    from handssca.render.gl import make_renderer

    model = build_model({"backbone": args.backbone, "input_size": 256}).eval()
    rec = HandReconstructor(TorchRunner(model, torch.device("cpu")), model.hand.faces, 256, detector=det)
    scaled = ScaledImage.full(two)
    render = make_renderer("auto")
    rows.append(
        (
            f"HandSSCA network + mesh placement, per hand ({args.backbone})",
            median_ms(lambda: rec(scaled, hands[0].bbox), 5),
        )
    )
    pred = rec(scaled, hands[0].bbox)
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            (
                "files of one hand (.obj .ply .json overlay side view)",
                median_ms(lambda: save_prediction(pred, two, tmp, "h", render), 5),
            )
        )
        rows.append(
            (
                "whole predict of the two-hand photo (detect + 2 hands + files)",
                median_ms(
                    lambda: [
                        save_prediction(p, two, tmp, f"h{k}", render) for k, p in enumerate(rec.reconstruct_all(scaled))
                    ],
                    3,
                ),
            )
        )
    width = max(len(k) for k, _ in rows)
    print(f"{'case':{width}s} {'median ms':>10s}")
    for k, v in rows:
        print(f"{k:{width}s} {v:10.1f}")


if __name__ == "__main__":
    main()
