"""The pose prior the landmark fit uses: a Gaussian over the finger pose and, where the hand model has
them (the default hand), its anatomical joint limits (:mod:`handssca.hand.prior`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handssca.hand.prior import matrices_to_angles

#: Added to the Gaussian's variances (radians^2): keeps it proper for files with few or no pose samples.
VARIANCE_FLOOR = 0.01


@dataclass(frozen=True)
class PosePrior:
    """``mean`` (45,) finger pose relative to the model's ``hands_mean`` (the network's convention);
    ``sqrt_precision`` (45, 45) with ``|sqrt_precision @ (a - mean)|`` the Mahalanobis distance of a pose
    ``a``; ``axes`` (15, 3, 3) and ``limits`` (15, 3, 2) radians of the anatomical angles of the full local
    rotations (:func:`handssca.hand.prior.matrices_to_angles`), or None."""

    mean: np.ndarray
    sqrt_precision: np.ndarray
    axes: np.ndarray | None = None
    limits: np.ndarray | None = None

    @classmethod
    def from_hand(cls, hand) -> PosePrior:
        """From a :class:`~handssca.hand.HandModel`: the Gaussian of its ``hands_coeffs`` poses (MANO's
        captured poses; the default hand's prior draws) plus :data:`VARIANCE_FLOOR` (a model without pose
        samples: its mean pose, 0.5 rad standard deviations), its limits if any."""
        comps = hand.hands_components.detach().cpu().double().numpy()
        full_mean = hand.full_hands_mean.detach().cpu().double().numpy()
        own_mean = hand.hands_mean.detach().cpu().double().numpy()
        coeffs = hand.hands_coeffs
        if coeffs is not None and len(coeffs) >= 2:
            poses = np.asarray(coeffs, dtype=np.float64)[:, : comps.shape[0]] @ comps  # relative to full_mean
            mean = poses.mean(0) + full_mean - own_mean
            cov = np.cov(poses, rowvar=False) + VARIANCE_FLOOR * np.eye(45)
        else:
            mean, cov = full_mean - own_mean, 0.25 * np.eye(45)
        L = np.linalg.cholesky(np.linalg.inv(cov))  # precision = L L^T: |L^T d| is the distance
        axes, limits = hand.extras.get("axes"), hand.extras.get("limits")
        if axes is None or limits is None:
            axes = limits = None
        return cls(mean, L.T.copy(), axes, limits)


def limit_violation(local: np.ndarray, prior: PosePrior) -> np.ndarray:
    """(B, 15, 3) radians beyond the anatomical limits (0 inside) of the local rotations ``local``
    (B, 16, 3, 3) (root first; it has no limit). Zeros without limits."""
    if prior.limits is None:
        return np.zeros((local.shape[0], 15, 3))
    ang = matrices_to_angles(local[:, 1:], prior.axes)
    lo, hi = prior.limits[..., 0], prior.limits[..., 1]
    return np.maximum(ang - hi, 0.0) + np.minimum(ang - lo, 0.0)
