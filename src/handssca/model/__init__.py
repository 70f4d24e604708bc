"""The HandSSCA network and its parts, and the checkpoint format that stores it."""

from handssca.config import BLOCKS, ModelConfig
from handssca.model.backbone import FPNBackbone
from handssca.model.checkpoint import checkpoint_dict, load_model, read_checkpoint, save_checkpoint
from handssca.model.handssca import HandSSCA, build_model, count_parameters
from handssca.model.regressor import Regressor
from handssca.model.ssca import SS2D, SSCA, cross_scan

__all__ = [
    "BLOCKS",
    "FPNBackbone",
    "HandSSCA",
    "ModelConfig",
    "Regressor",
    "SS2D",
    "SSCA",
    "build_model",
    "checkpoint_dict",
    "count_parameters",
    "cross_scan",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]
