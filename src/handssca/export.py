"""Export a checkpoint to ONNX (or TorchScript) and run exported models with onnxruntime.

The exported graph uses the ``export`` scan backend (``scan_core_chunked``: the chunked cumsum form,
a few large tensor operations and no loop over the sequence), so it runs anywhere onnxruntime does.
The hand model is part of the graph (its arrays are constants there). The crop size, the hand mesh's
faces and the hand model's identity (``handssca_hand_model``: name, content hash, side, flat-hand
mean, default or not; :mod:`handssca.hand.identity`) are stored in the ONNX metadata, so that
``handssca predict --onnx`` needs nothing else and names the hand model in its results. A TorchScript
file holds the identity as its extra file ``handssca_hand_model.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handssca.hand.identity import check_identity
from handssca.io.atomic import atomic_path
from handssca.model.handssca import OUTPUT_KEYS


class ExportWrapper(nn.Module):
    """images (B,3,S,S) in [0,1] -> (vertices, joints, joints_img, pose_aa, betas) as a tuple."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        for m in model.modules():
            if hasattr(m, "scan_backend"):
                m.scan_backend = "export"

    def forward(self, images: torch.Tensor):
        out = self.model(images)
        return tuple(out[k] for k in OUTPUT_KEYS)


def export_model(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    fmt: str = "onnx",
    hand_model: str | None = None,
    opset: int = 17,
) -> Path:
    """Write ``out`` (.onnx or TorchScript .pt) from a handssca checkpoint, with the hand model it was
    trained with (``hand_model``: that model's MANO file; see :func:`~handssca.model.checkpoint.load_model`)."""
    from handssca.model.checkpoint import load_model

    model = load_model(checkpoint, hand_model).eval()
    identity = json.dumps(model.hand.identity())
    wrapper = ExportWrapper(model).eval()
    size = model.config.input_size
    dummy = torch.rand(1, 3, size, size)
    out = Path(out)
    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"format: expected 'onnx' or 'torchscript'; got {fmt!r}")
    import warnings

    with atomic_path(out) as tmp:
        if fmt == "torchscript":
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(wrapper, dummy, check_trace=False)
            traced.save(str(tmp), _extra_files={"handssca_hand_model.json": identity})
            return out
        import onnx

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape checks turned into constants
            # batch 1: the unrolled scan's shapes are traced as constants; OnnxRunner loops over a batch
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(tmp),
                input_names=["images"],
                output_names=list(OUTPUT_KEYS),
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        meta = {
            "handssca_input_size": str(size),
            "handssca_faces": json.dumps(model.hand.faces.tolist()),
            "handssca_config": json.dumps({k: v for k, v in vars(model.config).items()}),
            "handssca_hand_model": identity,
        }
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
    return out


class OnnxRunner:
    """Runs an exported model with onnxruntime: crops (B,3,S,S) float32 -> dict of numpy arrays (a
    :class:`~handssca.model.runner.NetworkRunner`).

    ``hand_model``: the identity of the hand model in the graph (from the metadata; None for a model
    exported by a handssca that did not record it); ``hand`` is None: the graph holds the hand model's
    arrays, Python does not."""

    def __init__(self, path: str | os.PathLike) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("onnxruntime is not installed: pip install 'handssca[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX model")
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "handssca_input_size" not in meta:
            raise ValueError(f"{path}: not exported by handssca (no handssca_input_size metadata)")
        self.input_size = int(meta["handssca_input_size"])
        self.faces = (
            np.asarray(json.loads(meta["handssca_faces"]), dtype=np.int64) if "handssca_faces" in meta else None
        )
        self.hand_model: dict | None = None
        self.hand = None
        if "handssca_hand_model" in meta:
            where = f"{path}: metadata 'handssca_hand_model'"
            try:
                identity = json.loads(meta["handssca_hand_model"])
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e})") from None
            self.hand_model = check_identity(identity, where)

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        runs = [self.session.run(list(OUTPUT_KEYS), {"images": c[None].astype(np.float32)}) for c in crops]
        return {k: np.concatenate([r[i] for r in runs]) for i, k in enumerate(OUTPUT_KEYS)}
