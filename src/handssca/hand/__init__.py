"""MANO-format hand layer, safe loader, license-free default hand and joint orders."""

from handssca.hand.layer import HandModel
from handssca.hand.loader import HandModelData, HandModelFileError, load_hand_model_data

__all__ = ["HandModel", "HandModelData", "HandModelFileError", "load_hand_model_data"]
