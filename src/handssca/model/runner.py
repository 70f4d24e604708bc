"""What runs the network on crops for :class:`~handssca.inference.HandReconstructor`: the
:class:`NetworkRunner` protocol, and :class:`TorchRunner`, the PyTorch one
(:class:`~handssca.export.OnnxRunner` is the onnxruntime one)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from handssca.model.handssca import OUTPUT_KEYS


class NetworkRunner(Protocol):
    """Crops in, the network's outputs out, with what the reconstructor needs to know of the network.

    ``input_size``: the crop side S; ``faces`` (F, 3) of the right hand's mesh (None when unknown);
    ``hand_model``: the identity of the hand model the meshes come from
    (:meth:`~handssca.hand.HandModel.identity`; None when unknown); ``hand``: that
    :class:`~handssca.hand.HandModel` when the runner holds it (None for an exported graph)."""

    input_size: int
    faces: np.ndarray | None
    hand_model: dict | None
    hand: object | None

    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """crops (B, 3, S, S) float32 in [0, 1] -> {key: (B, ...) numpy} for every key of
        :data:`~handssca.model.handssca.OUTPUT_KEYS`."""
        ...


class TorchRunner:
    """Runs a HandSSCA network on crops (B,3,S,S) -> dict of numpy arrays (a :class:`NetworkRunner`)."""

    def __init__(self, model, device: torch.device) -> None:
        self.model, self.device = model.eval(), device
        self.input_size = model.config.input_size
        self.faces = model.hand.faces
        self.hand = model.hand
        self.hand_model = model.hand.identity()

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(crops).to(self.device))
        return {k: out[k].float().cpu().numpy() for k in OUTPUT_KEYS}
