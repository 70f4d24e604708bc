"""Convert MediaPipe's palm-detection and hand-landmark ``.tflite`` models into handssca's detector file.

    python scripts/convert_mediapipe.py [--palm third_party/mediapipe/palm_detection_full.tflite]
        [--landmark third_party/mediapipe/hand_landmark_full.tflite]
        [--out src/handssca/assets/hand_detector.npz]

The sources are the Apache-2.0 models of the ``mediapipe==0.10.21`` wheel
(``mediapipe/modules/palm_detection/palm_detection_full.tflite`` and
``mediapipe/modules/hand_landmark/hand_landmark_full.tflite``), committed with their licence under
``third_party/mediapipe/``. Build-time dependency: ``ai-edge-litert`` (its flatbuffer reader); the package
itself only reads the ``.npz`` this writes, with :class:`handssca.detect.graph.TfliteGraph`.

The ``.npz`` holds, per network (``palm``, ``landmark``): ``<net>.graph``, the operators in execution
order as JSON (type, input and output tensor ids, options; tensor shapes in TFLite's NHWC layout), and
``<net>.t<id>``, every constant tensor as stored in the file (weights are float16 in both models;
DEQUANTIZE operators are folded: their output is the float16 constant). Weights stay in TFLite's layout;
the runtime transposes them. ``meta`` records the sources' names and SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = {
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "PRELU",
    "ADD",
    "MAX_POOL_2D",
    "PAD",
    "RESIZE_BILINEAR",
    "RESHAPE",
    "CONCATENATION",
    "MEAN",
    "FULLY_CONNECTED",
    "LOGISTIC",
}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 3: "RELU6"}


def _plain(value):
    """An operator option as JSON: enums by name where handssca uses them, numbers and bools as they are."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    raise TypeError(f"unsupported option value {value!r}")


def convert_model(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(graph, constants) of the first subgraph of a ``.tflite`` file."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}
    dtypes[schema.TensorType.INT32] = np.int32
    model = flatbuffer_utils.read_model(str(path))
    if len(model.subgraphs) != 1:
        raise ValueError(f"{path}: expected one subgraph, found {len(model.subgraphs)}")
    g = model.subgraphs[0]

    def const(i: int) -> np.ndarray | None:
        t = g.tensors[i]
        data = model.buffers[t.buffer].data if t.buffer else None
        if data is None or len(data) == 0:
            return None
        arr = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=dtypes[t.type])
        return arr.reshape([int(s) for s in t.shape]).copy()

    constants: dict[str, np.ndarray] = {}
    alias: dict[int, int] = {}
    ops = []
    for op in g.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        ins = [int(i) for i in op.inputs]
        outs = [int(i) for i in op.outputs]
        if name == "DEQUANTIZE":
            src = const(ins[0])
            if src is None:
                raise ValueError(f"{path}: DEQUANTIZE of a non-constant tensor {ins[0]}")
            constants[f"t{outs[0]}"] = src
            continue
        if name not in SUPPORTED:
            raise ValueError(f"{path}: operator {name} is not supported by handssca's TFLite runtime")
        for i in ins:
            i = alias.get(i, i)
            if i >= 0 and f"t{i}" not in constants and (c := const(i)) is not None:
                constants[f"t{i}"] = c
        opts = {}
        if op.builtinOptions is not None:
            opts = {k: _plain(v) for k, v in vars(op.builtinOptions).items() if not k.startswith("quant")}
        if "padding" in opts:
            opts["padding"] = PADDING[opts["padding"]]
        if "fusedActivationFunction" in opts:
            opts["fusedActivationFunction"] = ACTIVATION[opts["fusedActivationFunction"]]
        ops.append({"op": name, "in": ins, "out": outs, "opt": opts})
    used = {i for o in ops for i in o["in"] + o["out"]} | set(g.inputs) | set(g.outputs)
    graph = {
        "inputs": [int(i) for i in g.inputs],
        "outputs": [int(i) for i in g.outputs],
        "shapes": {str(i): [int(s) for s in g.tensors[i].shape] for i in sorted(used) if i >= 0},
        "names": {str(i): g.tensors[i].name.decode() for i in list(g.inputs) + list(g.outputs)},
        "ops": ops,
    }
    return graph, constants


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--palm", type=Path, default=ROOT / "third_party/mediapipe/palm_detection_full.tflite")
    ap.add_argument("--landmark", type=Path, default=ROOT / "third_party/mediapipe/hand_landmark_full.tflite")
    ap.add_argument("--out", type=Path, default=ROOT / "src/handssca/assets/hand_detector.npz")
    args = ap.parse_args(argv)
    arrays: dict[str, np.ndarray] = {}
    meta = {"source": "mediapipe==0.10.21 wheel (Apache-2.0), see third_party/mediapipe/", "files": {}}
    for net, path in (("palm", args.palm), ("landmark", args.landmark)):
        graph, constants = convert_model(path)
        arrays[f"{net}.graph"] = np.frombuffer(json.dumps(graph).encode(), dtype=np.uint8)
        arrays.update({f"{net}.{k}": v for k, v in constants.items()})
        meta["files"][net] = {"name": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        n = sum(v.size for v in constants.values())
        print(f"{net}: {len(graph['ops'])} operators, {len(constants)} constants, {n:,} values", file=sys.stderr)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
