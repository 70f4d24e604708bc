"""The HandSSCA network and its parts."""

from handssca.model.backbone import FPNBackbone
from handssca.model.handssca import (
    BLOCKS,
    HandSSCA,
    ModelConfig,
    build_model,
    checkpoint_dict,
    count_parameters,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from handssca.model.regressor import Regressor
from handssca.model.ssca import SS2D, SSCA, cross_scan

__all__ = [
    "BLOCKS", "FPNBackbone", "HandSSCA", "ModelConfig", "Regressor", "SS2D", "SSCA", "build_model",
    "checkpoint_dict", "count_parameters", "cross_scan", "load_model", "read_checkpoint", "save_checkpoint",
]  # fmt: skip
