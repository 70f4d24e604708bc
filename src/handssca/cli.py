"""The ``handssca`` command line: parses arguments and calls the package's functions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from handssca.messages import first_line


def _parameters_section(config: str | None = None):
    """``handssca info``: trainable parameters per module of the network a config builds (the defaults when None)."""
    from handssca.config import load_config
    from handssca.environment import Section
    from handssca.model import build_model, count_parameters

    cfg = load_config(config)
    counts = count_parameters(build_model(cfg.model))
    name = cfg.name if config is not None else "default config"
    sec = Section(f"parameters ({name}: {cfg.model.block}, {cfg.model.backbone}, input {cfg.model.input_size})")
    for k, v in counts.items():
        sec.add(k, f"{v:,}")
    return sec


def _cmd_info(args: argparse.Namespace) -> int:
    from handssca import environment as env

    sections = [
        env.versions_section(),
        env.devices_section(),
        env.scan_section(),
        env.hand_section(args.hand_model),
        env.renderer_section(),
    ]
    sections.append(_parameters_section(args.config))
    print(env.format_sections(sections))
    return 0


def _print_report(report, as_json: bool) -> None:
    import json
    import math

    if as_json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in report.metrics.items()}
        print(json.dumps({"benchmark": report.benchmark, "num_samples": report.num_samples, **clean}, indent=2))
        return
    print(f"{report.benchmark}: {report.num_samples} samples")
    width = max(len(k) for k in report.metrics)
    for k, v in report.metrics.items():
        print(f"  {k.ljust(width)}  {v:10.4f}")


def _cmd_score(args: argparse.Namespace) -> int:
    from handssca import evaluation as ev

    if args.benchmark in ("freihand", "ho3d"):
        gt_xyz = ev.read_points_json(args.gt_xyz, points=21)
        gt_verts = ev.read_points_json(args.gt_verts, count=len(gt_xyz))
        # the benchmarks' meshes are MANO's: a mesh of another vertex count cannot be scored against them
        pred_xyz, pred_verts = ev.read_pred_json(args.pred, count=len(gt_xyz), num_verts=gt_verts.shape[1])
        fn = ev.evaluate_freihand if args.benchmark == "freihand" else ev.evaluate_ho3d
        report = fn(pred_xyz, pred_verts, gt_xyz, gt_verts)
    else:
        report = ev.evaluate_dexycb(ev.read_dexycb_results(args.pred), ev.read_dexycb_results(args.gt))
    _print_report(report, args.json)
    if args.plot:
        from handssca.pictures import pck_figure, save_figure

        path = save_figure(
            pck_figure(report.curves, title=f"{report.benchmark}, {report.num_samples} samples"), args.plot
        )
        if not args.json:
            print(f"PCK plot written to {path}")
    return 0


def _cmd_hand_show(args: argparse.Namespace) -> int:
    from handssca.hand import HandModel
    from handssca.pictures import hand_sheet, save_figure

    model = HandModel.load(args.model, side=args.side) if args.model is None else HandModel.from_file(args.model)
    path = save_figure(hand_sheet(model, samples=args.samples, seed=args.seed), args.out)
    print(f"{model.describe()}\nwrote {path}")
    return 0


def _cmd_convert_official(args: argparse.Namespace) -> int:
    import logging

    from handssca.convert import convert_official_checkpoint

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = convert_official_checkpoint(args.src, args.dst, args.input_size, args.hand_model)
    print(f"wrote {path}")
    return 0


def _setup_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _cmd_train(args: argparse.Namespace) -> int:
    from handssca.config import load_config
    from handssca.engine.trainer import train

    _setup_logging()
    cfg = load_config(args.config, args.overrides)
    summary = train(cfg, resume=args.resume, progress=not args.no_progress, resume_anyway=args.resume_anyway)
    if summary is not None and summary.get("history"):
        last = summary["history"][-1]
        print(
            f"trained {summary['step']} steps, {summary['epoch']} epochs; last validation: "
            + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("epoch", "step"))
        )
    print(f"checkpoints in {cfg.train.out_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from handssca.engine.report import evaluate_checkpoint

    _setup_logging()
    result = evaluate_checkpoint(
        args.checkpoint,
        args.config,
        args.split,
        args.out,
        args.overrides,
        hand_model=args.hand_model,
        progress=not args.no_progress,
        refine=None if args.refine == "none" else args.refine,
    )
    _print_metrics(result["metrics"])
    print(f"wrote {result['out_dir']}: " + ", ".join(sorted(p.name for p in result["files"])))
    return 0


def _print_metrics(metrics: dict) -> None:
    """One metric a line; with a landmark fit, its value beside the network's."""
    fit = metrics.get("landmark_fit")
    plain = {k: v for k, v in metrics.items() if k != "landmark_fit"}
    width = max(len(k) for k in plain) if plain else 0
    if fit is not None:
        print(f"  {'metric'.ljust(width)}  {'network':>10s}  {'fitted':>10s}")
    for k, v in plain.items():
        line = f"  {k.ljust(width)}  {v:10.4f}" if isinstance(v, float) else f"  {k.ljust(width)}  {v}"
        if fit is not None and isinstance(fit.get(k), float):
            line += f"  {fit[k]:10.4f}"
        print(line)
    if fit is not None:
        print(
            f"  landmark fit: landmarks found on {fit['landmarks_found']} of {fit['samples']} crops, "
            f"fit used on {fit['fitted']} (the network's prediction on the others)"
        )


def _parse_bbox(text: str | None):
    if text is None:
        return None
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--bbox: expected x,y,w,h in pixels; got {text!r}") from None
    return (x, y, w, h)


def _cmd_predict(args: argparse.Namespace) -> int:
    from handssca.inference import HandReconstructor, check_refine
    from handssca.predict import run_predict

    if (args.checkpoint is None) == (args.onnx is None):
        raise ValueError("give exactly one of --checkpoint CKPT or --onnx MODEL.onnx")
    if args.onnx is not None and args.precision is not None:
        raise ValueError("--precision: only with --checkpoint (an ONNX model runs in the precision it was exported in)")
    rec = (
        HandReconstructor.from_checkpoint(args.checkpoint, args.hand_model, precision=args.precision or "auto")
        if args.checkpoint
        else HandReconstructor.from_onnx(args.onnx, args.hand_model)
    )
    rec.refine = check_refine(args.refine)
    if args.bbox is not None and args.whole_image:
        raise ValueError("give at most one of --bbox and --whole-image")
    summary = run_predict(
        rec,
        args.inputs,
        args.out,
        _parse_bbox(args.bbox),
        args.hand,
        progress=not args.no_progress,
        whole_image=args.whole_image,
        smooth=args.smooth,
        video_format=args.video_format,
    )
    print(summary.text())
    print(f"outputs in {args.out}")
    return 0 if summary.ok or not (summary.skipped or summary.no_hand) else 1


def _cmd_export(args: argparse.Namespace) -> int:
    from handssca.export import export_model

    path = export_model(args.checkpoint, args.out, args.format, hand_model=args.hand_model)
    print(f"wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from handssca.demo import run_demo

    _setup_logging()
    path = run_demo(args.out, args.overrides, progress=not args.no_progress)
    print(f"report: {path.resolve()}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from handssca.serve import serve

    serve(
        args.checkpoint,
        host=args.host,
        port=args.port,
        hand_model=args.hand_model,
        device=args.device,
        auth=args.auth,
        auth_file=args.auth_file,
        max_upload_mb=args.max_upload_mb,
        precision=args.precision,
    )
    return 0


def _cmd_data_preview(args: argparse.Namespace) -> int:
    from handssca import pictures
    from handssca.config import load_config
    from handssca.data.factory import build_dataset
    from handssca.hand import HandModel

    overrides = []  # flags given on the command line win over the config's values
    if args.dataset:
        overrides.append(f"data.dataset={args.dataset}")
    if args.size:
        overrides.append(f"model.input_size={args.size}")
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.hand_model:
        overrides.append(f"model.hand_model={args.hand_model}")
    cfg = load_config(args.config, overrides + list(args.overrides))
    if cfg.data.dataset == "synthetic":  # render only the samples shown
        setattr(cfg.data, f"{args.split}_size", args.count)
    ds = build_dataset(cfg, getattr(cfg.data, f"{args.split}_split"), train=args.augment)
    faces = HandModel.load(cfg.model.hand_model).faces
    grid = pictures.sample_grid(
        ds, args.count, faces=faces, title=f"{cfg.data.dataset} {args.split}: 2D joints (red), mesh outline (yellow)"
    )
    path = pictures.save_figure(grid, args.out)
    print(f"wrote {path}")
    return 0


#: ``--hand-model`` of the commands that run a checkpoint.
HAND_MODEL_HELP = (
    "the MANO file the checkpoint was trained with, checked against the content hash it records "
    "(default: the file at the path recorded at training; not needed for a default-hand checkpoint)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    from handssca import __version__
    from handssca.config import DATASETS

    parser = argparse.ArgumentParser(
        prog="handssca",
        description="3D hand mesh reconstruction from one RGB image (HandSSCA).",
    )
    parser.add_argument("--version", action="version", version=f"handssca {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full Python traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="versions, devices, kernels, hand model and parameter counts")
    p.add_argument("--hand-model", metavar="PATH", help="a MANO file to describe instead of the default hand")
    p.add_argument(
        "--config", help="config whose parameter counts to print (path or shipped name; default: HandSSCA at 256)"
    )
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train a model (use torchrun for several GPUs or nodes)")
    p.add_argument("--config", help="YAML config (configs/*.yaml); default: the built-in defaults")
    p.add_argument("--resume", metavar="CKPT", help="continue a run exactly from its last.pt")
    p.add_argument(
        "--resume-anyway",
        action="store_true",
        help="with --resume: continue although the config differs in settings that break exactness",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.batch_size=32")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="run a checkpoint on a split: metrics, per-sample CSV, plots, submission")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", help="YAML config for the data (default: the config stored in the checkpoint)")
    p.add_argument("--split", default=None, help="split to evaluate (default: eval.split of the config)")
    p.add_argument("--out", help="output folder (default: <checkpoint folder>/eval_<split>)")
    p.add_argument("--hand-model", metavar="PATH", help=HAND_MODEL_HELP)
    p.add_argument(
        "--refine",
        choices=("none", "landmarks"),
        default="none",
        help="landmarks: also the hand model fitted to the detector's landmarks on each crop, its metrics beside "
        "the network's (default none: the network's, as the benchmarks define them)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="reconstruct hands in images, folders or videos")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, videos (.gif, .mp4 ...)")
    p.add_argument("--checkpoint", help="a handssca checkpoint")
    p.add_argument("--onnx", help="an exported model.onnx (runs through onnxruntime)")
    p.add_argument("--bbox", help="one hand box x,y,w,h in pixels for every input (default: detect every hand)")
    p.add_argument("--whole-image", action="store_true", help="no detection: the whole image is one hand's crop")
    p.add_argument(
        "--hand",
        choices=("right", "left"),
        default=None,
        help="hand side for every hand (default: the detected side; right with --bbox or --whole-image)",
    )
    p.add_argument(
        "--smooth", action="store_true", help="videos: One-Euro filter on each tracked hand (its fitted parameters)"
    )
    p.add_argument(
        "--refine",
        choices=("landmarks", "none"),
        default="landmarks",
        help="landmarks (default): fit the hand model to the detector's 21 landmarks, starting from the network's "
        "output; none: the network's output as it is",
    )
    p.add_argument(
        "--video-format",
        choices=("auto", "mp4", "gif"),
        default="auto",
        help="overlay video: mp4 through imageio-ffmpeg, else gif (auto: gif for gif inputs or without imageio-ffmpeg)",
    )
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument(
        "--hand-model",
        metavar="PATH",
        help=HAND_MODEL_HELP + "; with --onnx: optional, checked against the model's record",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default=None,
        help="the network's arithmetic with --checkpoint (default auto: bfloat16 on a CPU with native bf16, "
        "AVX512-BF16 or AMX, else float32)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="export a checkpoint to ONNX or TorchScript")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", required=True)
    p.add_argument("--hand-model", metavar="PATH", help=HAND_MODEL_HELP + " (it goes into the exported graph)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("demo", help="train on the embedded synthetic data, evaluate, predict and write an HTML report")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the demo config")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("serve", help="a local web page: drop a photo, see and download its hands (needs gradio)")
    p.add_argument("--checkpoint", required=True, help="a handssca checkpoint")
    p.add_argument("--port", type=int, default=7860, help="default: 7860")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--hand-model", metavar="PATH", help=HAND_MODEL_HELP)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    p.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the network's arithmetic (default auto: bfloat16 on a CPU with native bf16, "
        "AVX512-BF16 or AMX, else float32)",
    )
    p.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="ask for this name and password (visible to other users of this machine in the process list: "
        "prefer --auth-file)",
    )
    p.add_argument(
        "--auth-file", metavar="FILE", help="a file of USER:PASSWORD lines, each a name and password allowed"
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=100.0,
        metavar="MB",
        help="the largest file accepted on any input, in megabytes (default: 100)",
    )
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("data", help="datasets")
    data = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    b = data.add_parser("preview", help="a grid of samples with 2D joints and the mesh outline drawn")
    b.add_argument("--config", help="show what this config trains on (a name in configs/ or a YAML path)")
    b.add_argument("--dataset", choices=DATASETS, help="default: the config's, else synthetic")
    b.add_argument("--root", help="dataset folder (official layout)")
    b.add_argument("--split", choices=("train", "val", "test"), default="train")
    b.add_argument("--augment", action="store_true", help="apply the training augmentation")
    b.add_argument("--count", type=int, default=12)
    b.add_argument("--size", type=int, help="crop size (default: the config's model.input_size, else 256)")
    b.add_argument("--hand-model", metavar="PATH", help="MANO file (needed for MANO labels and outlines)")
    b.add_argument("--out", default="grid.png")
    b.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the config")
    b.set_defaults(func=_cmd_data_preview)

    p = sub.add_parser("convert-official", help="turn an official HandS3C checkpoint into a handssca checkpoint")
    p.add_argument("src", help="official checkpoint ({'epoch', 'network', 'optimizer'})")
    p.add_argument("dst", help="handssca checkpoint to write")
    p.add_argument("--input-size", type=int, help="256 (HO3D/DexYCB) or 224 (FreiHAND); default: from the weights")
    p.add_argument(
        "--hand-model",
        metavar="PATH",
        help="MANO_RIGHT.pkl, the model the official weights were trained with: its content hash is recorded "
        "(without it, every use of the converted checkpoint needs --hand-model, unverified)",
    )
    p.set_defaults(func=_cmd_convert_official)

    p = sub.add_parser("hand", help="the hand model")
    hand = p.add_subparsers(dest="hand_command", metavar="ACTION", required=True)
    b = hand.add_parser("show", help="render the template and poses sampled from the prior into a PNG")
    b.add_argument("--model", metavar="PATH", help="MANO_RIGHT.pkl / MANO_LEFT.pkl / .npz (default: the built-in hand)")
    b.add_argument("--side", choices=("right", "left"), default="right", help="side of the built-in hand")
    b.add_argument("--out", default="hand.png", help="output PNG (default: hand.png)")
    b.add_argument("--samples", type=int, default=4, help="posed samples to draw")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=_cmd_hand_show)

    p = sub.add_parser("score", help="score a benchmark submission file locally with the official metrics")
    bench = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, what in (("freihand", "FreiHAND"), ("ho3d", "HO3D v2/v3 (OpenGL frame, HO3D joint order)")):
        b = bench.add_parser(name, help=f"{what}: pred.json vs evaluation_xyz/verts.json")
        b.add_argument("--pred", required=True, help="pred.json, or a zip holding one")
        b.add_argument("--gt-xyz", required=True, help="evaluation_xyz.json")
        b.add_argument("--gt-verts", required=True, help="evaluation_verts.json")
    b = bench.add_parser("dexycb", help="DexYCB toolkit result txt (id,x1,y1,z1,... in mm)")
    b.add_argument("--pred", required=True, help="result file")
    b.add_argument("--gt", required=True, help="ground truth in the same format")
    for b in bench.choices.values():
        b.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        b.add_argument("--plot", metavar="PNG", help="also draw the PCK curves into this file")
        b.set_defaults(func=_cmd_score)
    return parser


#: What the command line reports as one line with exit status 2: bad input, a missing or unreadable
#: file, a full disk, a diverged run, no memory left. Everything else is a bug (exit status 70,
#: ``--debug`` for the trace); Ctrl-C exits with 130, SIGTERM with 143.
USER_ERRORS = (FileNotFoundError, ValueError, FloatingPointError, OSError, MemoryError)


def one_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when it has none). An error
    re-raised from a DataLoader worker ("Caught X in DataLoader worker process 0. Original Traceback
    ...") gives the original error's own message, which names the file."""
    line = first_line(e)
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if line.startswith("Caught ") and any(ln.startswith("Original Traceback") for ln in lines):
        last = lines[-1]
        return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ", 1)[0] else last
    return line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``handssca`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        term = str(e) == "SIGTERM"
        print(f"handssca {args.command}: {'terminated' if term else 'interrupted'}", file=sys.stderr)
        return 143 if term else 130
    except USER_ERRORS as e:  # expected failures (bad input, missing file, full disk): one clear line, no traceback
        if args.debug:
            raise
        print(f"handssca {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: say so, and how to see the trace
        if args.debug:
            raise
        if type(e).__name__ == "OutOfMemoryError":  # torch's CUDA out of memory: too big a batch, not a bug
            print(
                f"handssca {args.command}: error: the GPU ran out of memory ({one_line(e)}); "
                "lower train.batch_size or eval.batch_size, or use train.amp=true",
                file=sys.stderr,
            )
            return 2
        print(
            f"handssca {args.command}: internal error (a bug in handssca, please report it): {type(e).__name__}: "
            f"{one_line(e)}; rerun with --debug for the traceback",
            file=sys.stderr,
        )
        return 70


def console() -> int:
    """The ``handssca`` console command: glibc's malloc set for steady large allocations
    (:func:`handssca.allocator.reexec_with_tunables`; ``HANDSSCA_MALLOC=system`` to keep its defaults), then
    :func:`main`."""
    from handssca.allocator import reexec_with_tunables

    reexec_with_tunables()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
