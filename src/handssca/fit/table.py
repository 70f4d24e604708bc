"""Where a detector's landmarks sit on a hand model, and how much each is trusted.

MediaPipe's 21 landmarks are not a hand model's rotation centres or tip vertices. A
:class:`LandmarkTable` gives each landmark (FreiHAND order) an offset carried by its bone
(:data:`~handssca.fit.keypoints.KEYPOINT_BONE`; metres, in the rest pose's frame) and a weight for its 2D
and its 3D position: ``(1 cm)^2 / variance`` per coordinate, the 2D one in metres at the hand's depth, so that
the fit's 2D and 3D terms are weighed against each other (:mod:`handssca.fit.calibration`). The shipped table
(``assets/landmark_table_default_hand.json``) is calibrated for the default hand by
``scripts/calibrate_landmarks.py`` on the package's synthetic renders, where the truth is known; a MANO
file gets the same weights and no offsets unless a table calibrated for it is given (the script takes
``--hand-model``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

DEFAULT_TABLE_FILE = "landmark_table_default_hand.json"


@dataclass(frozen=True)
class LandmarkTable:
    """``offsets`` (21, 3) metres of the 3D landmarks, ``offsets_2d`` (21, 3) of the 2D keypoints;
    ``weights_2d``, ``weights_3d`` (21,) positive; ``source``: where it came from."""

    offsets: np.ndarray
    weights_2d: np.ndarray
    weights_3d: np.ndarray
    source: str = "none"
    offsets_2d: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.offsets_2d is None:
            object.__setattr__(self, "offsets_2d", np.array(self.offsets, dtype=np.float64))

    @classmethod
    def identity(cls) -> LandmarkTable:
        """No offsets, equal weights."""
        return cls(np.zeros((21, 3)), np.ones(21), np.ones(21), "identity")

    def to_json(self) -> dict:
        return {
            "format": "handssca-landmark-table",
            "version": 1,
            "source": self.source,
            "offsets_m": np.round(self.offsets, 6).tolist(),
            "offsets_2d_m": np.round(self.offsets_2d, 6).tolist(),
            "weights_2d": np.round(self.weights_2d, 4).tolist(),
            "weights_3d": np.round(self.weights_3d, 4).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict, name: str = "landmark table") -> LandmarkTable:
        """From :meth:`to_json`'s dict; ValueError naming ``name`` and the key for anything else."""
        if not isinstance(data, dict) or data.get("format") != "handssca-landmark-table":
            raise ValueError(f"{name}: not a handssca landmark table (expected format 'handssca-landmark-table')")
        shapes = {"offsets_m": (21, 3), "offsets_2d_m": (21, 3), "weights_2d": (21,), "weights_3d": (21,)}
        arrays = {}
        for key, shape in shapes.items():
            try:
                a = np.asarray(data[key], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{name}: {key}: expected numbers of shape {shape}") from None
            if a.shape != shape or not np.isfinite(a).all():
                raise ValueError(f"{name}: {key}: expected finite numbers of shape {shape}; got shape {a.shape}")
            arrays[key] = a
        if (arrays["weights_2d"] <= 0).any() or (arrays["weights_3d"] <= 0).any():
            raise ValueError(f"{name}: weights_2d and weights_3d must be positive")
        return cls(
            arrays["offsets_m"],
            arrays["weights_2d"],
            arrays["weights_3d"],
            str(data.get("source", name)),
            arrays["offsets_2d_m"],
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> LandmarkTable:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read a landmark table ({e})") from None
        return cls.from_json(data, str(path))

    @classmethod
    def shipped(cls) -> LandmarkTable:
        """The table calibrated for the default hand (see the module docstring)."""
        ref = resources.files("handssca") / "assets" / DEFAULT_TABLE_FILE
        with resources.as_file(ref) as p:
            if not Path(p).is_file():
                raise ValueError(f"{p}: the packaged landmark table is missing; reinstall handssca")
            return cls.load(p)

    @classmethod
    def for_hand(cls, hand) -> LandmarkTable:
        """The shipped table for the default hand; for a MANO file its weights without offsets."""
        table = cls.shipped()
        if getattr(hand, "is_default", False):
            return table
        return cls(
            np.zeros((21, 3)), table.weights_2d, table.weights_3d, f"{table.source}: weights only", np.zeros((21, 3))
        )
