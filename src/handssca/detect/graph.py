"""A small PyTorch runtime for the converted MediaPipe hand networks (``assets/hand_detector.npz``).

``scripts/convert_mediapipe.py`` stores each ``.tflite`` network as its operator list (JSON, TFLite's
NHWC shapes) and its constant tensors. :class:`TfliteGraph` runs that list with ``torch.nn.functional``:
4-D activations are kept NCHW (PyTorch's layout) and the operators whose meaning depends on the layout
(RESHAPE, CONCATENATION, MEAN, PAD) translate NHWC axes. It is an ``nn.Module``: it moves to a GPU,
traces and exports to ONNX like any other.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: NHWC axis -> NCHW axis, for 4-D tensors
_NCHW_AXIS = (0, 2, 3, 1)


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: (before, after); the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """A fused activation, in place: ``x`` is always an operator's fresh output."""
    if name == "NONE":
        return x
    if name == "RELU":
        return F.relu_(x)
    if name == "RELU6":
        return F.hardtanh_(x, 0.0, 6.0)
    raise ValueError(f"unsupported fused activation {name}")


class TfliteGraph(nn.Module):
    """One converted network. ``forward(x)``: x (B, 3, H, W) float in the network's input range ->
    tuple of the network's outputs in TFLite's order and shapes (B first)."""

    def __init__(self, graph: dict, constants: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.ops = graph["ops"]
        self.shapes = {int(k): v for k, v in graph["shapes"].items()}
        self.inputs, self.outputs = graph["inputs"], graph["outputs"]
        self.plans: list[dict] = []
        self.params = nn.ParameterDict()
        for k, op in enumerate(self.ops):
            self.plans.append(self._plan(k, op, constants))
        for p in self.params.values():
            p.requires_grad_(False)

    @classmethod
    def from_npz(cls, data, name: str) -> TfliteGraph:
        """The network ``name`` (``palm`` or ``landmark``) of an opened ``hand_detector.npz``."""
        graph = json.loads(bytes(data[f"{name}.graph"]).decode())
        prefix = f"{name}.t"
        constants = {k[len(name) + 1 :]: data[k] for k in data.files if k.startswith(prefix)}
        return cls(graph, constants)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the network's input."""
        shape = self.shapes[self.inputs[0]]
        return int(shape[1]), int(shape[2])

    def _param(self, k: int, role: str, value: np.ndarray) -> str:
        key = f"op{k}_{role}"
        self.params[key] = nn.Parameter(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        return key

    def _plan(self, k: int, op: dict, constants: dict[str, np.ndarray]) -> dict:
        """Precomputed, layout-translated arguments of operator k (weights registered as parameters)."""
        kind, opt, ins = op["op"], op["opt"], op["in"]

        def const(i: int) -> np.ndarray:
            return constants[f"t{i}"]

        plan: dict = {"kind": kind}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = const(ins[1]).astype(np.float32)
            _, h, wd, _ = self.shapes[ins[0]]
            kh, kw = w.shape[1], w.shape[2]
            if kind == "CONV_2D":  # (O, kh, kw, I) -> (O, I, kh, kw)
                weight, groups = w.transpose(0, 3, 1, 2), 1
            else:  # (1, kh, kw, C * m) -> (C * m, 1, kh, kw)
                weight, groups = w.transpose(3, 0, 1, 2), self.shapes[ins[0]][3]
            stride, dil = (opt["strideH"], opt["strideW"]), (opt["dilationHFactor"], opt["dilationWFactor"])
            pads = (0, 0, 0, 0)
            if opt["padding"] == "SAME":
                ph = _same_pads(h, kh, stride[0], dil[0])
                pw = _same_pads(wd, kw, stride[1], dil[1])
                pads = (pw[0], pw[1], ph[0], ph[1])
            plan.update(
                weight=self._param(k, "w", weight),
                bias=self._param(k, "b", const(ins[2])) if len(ins) > 2 and ins[2] >= 0 else None,
                stride=stride,
                dilation=dil,
                groups=groups,
                act=opt["fusedActivationFunction"],
            )
            if pads[0] == pads[1] and pads[2] == pads[3]:
                plan.update(pad=None, padding=(pads[2], pads[0]))
            else:
                plan.update(pad=pads, padding=(0, 0))
        elif kind == "PRELU":
            plan["alpha"] = self._param(k, "alpha", const(ins[1]).reshape(-1))
        elif kind == "ADD":
            plan["act"] = opt["fusedActivationFunction"]
        elif kind == "MAX_POOL_2D":
            _, h, wd, _ = self.shapes[ins[0]]
            kh, kw, sh, sw = opt["filterHeight"], opt["filterWidth"], opt["strideH"], opt["strideW"]
            pads = (0, 0, 0, 0)
            if opt["padding"] == "SAME":
                ph, pw = _same_pads(h, kh, sh, 1), _same_pads(wd, kw, sw, 1)
                pads = (pw[0], pw[1], ph[0], ph[1])
            plan.update(kernel=(kh, kw), stride=(sh, sw), pad=pads if any(pads) else None)
        elif kind == "PAD":
            p = const(ins[1]).astype(int)  # (rank, 2) before/after per NHWC axis
            if len(p) != 4 or p[0].any():
                raise ValueError("PAD: only 4-D padding of H, W and C is supported")
            plan["pad"] = (int(p[2, 0]), int(p[2, 1]), int(p[1, 0]), int(p[1, 1]), int(p[3, 0]), int(p[3, 1]))
        elif kind == "RESIZE_BILINEAR":
            if opt["alignCorners"] or not opt["halfPixelCenters"]:
                raise ValueError("RESIZE_BILINEAR: only half-pixel centres without aligned corners are supported")
            plan["size"] = tuple(int(s) for s in const(ins[1]))
        elif kind == "RESHAPE":
            plan.update(src_rank=len(self.shapes[ins[0]]), shape=self.shapes[op["out"][0]][1:])
        elif kind == "CONCATENATION":
            rank, axis = len(self.shapes[op["out"][0]]), opt["axis"]
            axis = axis % rank
            plan.update(axis=_NCHW_AXIS[axis] if rank == 4 else axis, act=opt["fusedActivationFunction"])
        elif kind == "MEAN":
            rank = len(self.shapes[ins[0]])
            axes = [int(a) % rank for a in np.atleast_1d(const(ins[1]))]
            plan.update(axes=tuple(_NCHW_AXIS[a] if rank == 4 else a for a in axes), keep=opt["keepDims"])
            if opt["keepDims"] and rank == 4:
                raise ValueError("MEAN: keepDims on 4-D tensors is not supported")
        elif kind == "FULLY_CONNECTED":
            if len(self.shapes[ins[0]]) != 2:
                raise ValueError("FULLY_CONNECTED: only 2-D inputs are supported")
            plan.update(
                weight=self._param(k, "w", const(ins[1])),
                bias=self._param(k, "b", const(ins[2])) if len(ins) > 2 and ins[2] >= 0 else None,
                act=opt["fusedActivationFunction"],
            )
        elif kind != "LOGISTIC":
            raise ValueError(f"unsupported operator {kind}")
        return plan

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[int, torch.Tensor] = {self.inputs[0]: x}
        p = self.params
        for op, plan in zip(self.ops, self.plans):
            kind, ins = plan["kind"], op["in"]
            a = values[ins[0]]
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                if plan["pad"] is not None:
                    a = F.pad(a, plan["pad"])
                bias = None if plan["bias"] is None else p[plan["bias"]]
                y = F.conv2d(
                    a, p[plan["weight"]], bias, plan["stride"], plan["padding"], plan["dilation"], plan["groups"]
                )
                y = _activation(y, plan["act"])
            elif kind == "PRELU":
                y = F.prelu(a, p[plan["alpha"]])
            elif kind == "ADD":
                y = _activation(a + values[ins[1]], plan["act"])
            elif kind == "MAX_POOL_2D":
                if plan["pad"] is not None:
                    a = F.pad(a, plan["pad"], value=float("-inf"))
                y = F.max_pool2d(a, plan["kernel"], plan["stride"])
            elif kind == "PAD":
                y = F.pad(a, plan["pad"])
            elif kind == "RESIZE_BILINEAR":
                y = F.interpolate(a, size=plan["size"], mode="bilinear", align_corners=False)
            elif kind == "RESHAPE":
                if plan["src_rank"] == 4:
                    a = a.permute(0, 2, 3, 1)
                y = a.reshape(a.shape[0], *plan["shape"])
                if len(plan["shape"]) == 3:
                    y = y.permute(0, 3, 1, 2)
            elif kind == "CONCATENATION":
                y = _activation(torch.cat([values[i] for i in ins], dim=plan["axis"]), plan["act"])
            elif kind == "MEAN":
                y = a.mean(dim=plan["axes"], keepdim=plan["keep"])
            elif kind == "FULLY_CONNECTED":
                bias = None if plan["bias"] is None else p[plan["bias"]]
                y = _activation(F.linear(a, p[plan["weight"]], bias), plan["act"])
            else:  # LOGISTIC
                y = torch.sigmoid(a)
            values[op["out"][0]] = y
        return tuple(values[i] for i in self.outputs)
