"""How a view is given: a similarity map M (2x3, canvas pixels -> view pixels) and its size."""

from __future__ import annotations

import math

import numpy as np


def affine3(M: np.ndarray) -> np.ndarray:
    """A 2x3 affine as a 3x3 matrix."""
    return np.vstack([np.asarray(M, dtype=np.float64), [0.0, 0.0, 1.0]])


def scale_of(A: np.ndarray) -> float:
    """The scale of an affine map (its linear part's area factor, square-rooted): view pixels per source pixel."""
    return float(math.sqrt(abs(np.linalg.det(A[:2, :2]))))
