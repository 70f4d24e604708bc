"""Fitting a hand model to a detector's landmarks (2D keypoints through a camera and 3D landmarks)."""

from handssca.fit.keypoints import KeypointModel, pose_keypoints
from handssca.fit.prior import PosePrior
from handssca.fit.solver import FitInit, FitModel, FitResult, FitWeights, fit_hand, usable
from handssca.fit.table import LandmarkTable

__all__ = [
    "FitInit",
    "FitModel",
    "FitResult",
    "FitWeights",
    "KeypointModel",
    "LandmarkTable",
    "PosePrior",
    "fit_hand",
    "pose_keypoints",
    "usable",
]
