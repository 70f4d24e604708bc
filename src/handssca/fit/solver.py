"""Fit a hand model to a detector's landmarks: 21 3D landmarks (hand-centred, any scale), 21 2D keypoints
and the camera, batched over hands.

    from handssca.fit import FitModel, fit_hand
    model = FitModel.from_hand(HandModel.default())          # once per hand model
    result = fit_hand(model, keypoints_2d, K, keypoints_3d)   # (B, 21, 2) px, (3, 3), (B, 21, 3) m
    result.pose, result.betas, result.transl                  # MANO parameters in the camera frame

The energy (all terms in metres, or metres per unit of a prior; :class:`FitWeights`):

- the 3D landmarks after a free rotation and translation and a scale with a weak prior (the landmarks'
  scale is a network's estimate, not a measurement): the rotation and scale aligned in closed form at the
  start, then variables of the solve;
- the 2D keypoints through K, in pixels turned into metres at the hand's depth, with a Huber loss;
- the pose prior (:class:`~handssca.fit.prior.PosePrior`: a Gaussian over the finger pose; the default
  hand's anatomical joint limits), a shape prior (betas ~ N(0, 1));
- optionally a pull towards the network's pose and shape (``init``) and, for video, towards the
  previous frame's fit (``previous``).

Landmarks are not the model's joints: each carries a calibrated offset on its bone and a weight
(:class:`~handssca.fit.table.LandmarkTable`). The start is closed-form (the global rotation from the
palm's landmarks by Kabsch, each bone swung onto its landmarks in turn, the translation by least
squares through K), then a few batched Levenberg-Marquardt steps on the exact Jacobian
(:func:`~handssca.fit.keypoints.keypoint_jacobian`). Right hands (mirror left ones first).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from dataclasses import dataclass

import numpy as np

from handssca.fit import kernel as fit_kernel
from handssca.fit.calibration import ray_rotation
from handssca.fit.keypoints import (
    KeypointModel,
    canonical_rotvec,
    inverse_right_jacobian,
    keypoint_jacobian,
    log_rotation,
    offset_jacobian,
    offset_points,
    pose_keypoints,
    right_jacobian,
    rodrigues,
    skew,
)
from handssca.fit.prior import PosePrior, limit_violation
from handssca.fit.table import LandmarkTable
from handssca.geometry import solve_translation
from handssca.hand.joint_orders import FREIHAND_PARENTS

#: Landmarks of the palm (FreiHAND order: wrist, index/middle/ring/pinky MCPs) for the global rotation.
PALM = (0, 5, 9, 13, 17)
#: Each landmark's parent landmark along its finger (:data:`~handssca.hand.joint_orders.FREIHAND_PARENTS`),
#: and (:data:`SWING_JOINT`) the MANO joint whose local rotation swings the bone between them.
LANDMARK_PARENT = FREIHAND_PARENTS
#: The landmarks whose bone is swung, level by level from the palm (each level one per finger).
SWING_LEVELS = ((2, 6, 10, 14, 18), (3, 7, 11, 15, 19), (4, 8, 12, 16, 20))
SWING_JOINT = {2: 13, 3: 14, 4: 15, 6: 1, 7: 2, 8: 3, 10: 4, 11: 5, 12: 6, 14: 10, 15: 11, 16: 12, 18: 7, 19: 8, 20: 9}


#: A fit is used only when its landmark points end within this fraction of the hand's 2D size from the 2D
#: keypoints on average, and within :data:`MAX_RESIDUAL_3D_M` of the aligned 3D landmarks: beyond, the
#: landmarks disagree with each other or with any hand the model can make (a hand seen edge-on, occluded,
#: mistaken), and the fit is worse than the network (measured on synthetic crops, docs/fitting.md).
MAX_RESIDUAL_2D = 0.03
MAX_RESIDUAL_3D_M = 0.010


@dataclass(frozen=True)
class FitWeights:
    """Weights of the energy's terms (see the module docstring). Distances are metres; the 2D term's
    pixels are turned into metres at the hand's depth (pixels * depth / focal length)."""

    keypoints_3d: float = 0.2  #: the 3D landmarks (after the free similarity)
    keypoints_2d: float = 1.0  #: the 2D keypoints
    robust_2d_m: float = 0.01  #: the 2D term's Huber threshold, metres at the hand's depth
    scale_prior: float = 0.1  #: pull of the landmarks' scale towards 1 (relative to the landmarks' spread)
    pose_prior_m: float = 0.002  #: metres per standard deviation of the pose prior
    limits_m_per_rad: float = 0.05  #: metres per radian beyond an anatomical limit
    shape_m: float = 0.002  #: metres per unit of a shape coefficient
    network_m: float = 0.0005  #: towards the network's finger pose (per prior standard deviation) and shape
    temporal_m: float = 0.002  #: towards the previous frame's fit (pose, shape; translation per cm)


@dataclass
class FitModel:
    """What fitting one hand model needs, prepared once: its keypoints, its pose prior, the landmark table."""

    keypoints: KeypointModel
    prior: PosePrior
    table: LandmarkTable

    @classmethod
    def from_hand(cls, hand, table: LandmarkTable | None = None) -> FitModel:
        """From a right :class:`~handssca.hand.HandModel`; ``table`` defaults to
        :func:`~handssca.fit.table.LandmarkTable.for_hand` (the shipped calibration)."""
        if hand.side != "right":
            raise ValueError("fit_hand fits right hands: mirror a left hand's landmarks and fit the right model")
        return cls(
            KeypointModel.from_hand(hand),
            PosePrior.from_hand(hand),
            LandmarkTable.for_hand(hand) if table is None else table,
        )


@dataclass
class FitInit:
    """Parameters to start from or pull towards (the network's prediction, a previous frame's fit):
    ``pose`` (B, 48) axis-angle relative to ``hands_mean``, ``betas`` (B, S), ``transl`` (B, 3) metres."""

    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray


@dataclass
class FitResult:
    """B fitted hands in the camera frame of K (right hands).

    ``pose`` (B, 48), ``betas`` (B, S), ``transl`` (B, 3): the hand layer's parameters; ``joints`` (B, 21, 3)
    metres, the model's keypoints (FreiHAND order, no landmark offsets); ``landmarks`` (B, 21, 3) the fitted
    3D landmarks and ``landmarks_2d`` (B, 21, 3) the points the 2D keypoints see (offsets included); ``scale``
    (B,) of the 3D landmarks; ``residual_2d_px`` (B,) mean distance of ``landmarks_2d``'s projections to the 2D
    keypoints, ``residual_2d_px_start`` the same at the closed-form
    start; ``residual_3d_m`` (B,) mean distance to the aligned 3D landmarks; ``iterations`` (B,) steps
    taken; ``converged`` (B,) bool: stopped because a step gained less than the tolerance or none lowered
    the energy (else the step limit stopped it); ``valid`` (B,) bool: the landmarks were finite and so is
    the fit (an invalid hand's numbers are a stand-in); ``cost`` (B,) final energy."""

    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    landmarks: np.ndarray
    landmarks_2d: np.ndarray
    scale: np.ndarray
    residual_2d_px: np.ndarray
    residual_2d_px_start: np.ndarray
    residual_3d_m: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    valid: np.ndarray
    cost: np.ndarray


def _kabsch(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotations R minimising sum |R p - q|^2 for centred point sets P, Q (B, N, 3)."""
    return _kabsch_from(np.einsum("bni,bnj->bij", Q, P))


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B, 3, 3) the smallest rotation turning directions a onto b (B, 3); the identity for a zero vector."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = (a * b).sum(-1)
    angle = np.arctan2(s, c)
    # opposite directions: any axis normal to a
    other = np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    fallback = np.cross(a, other)
    axis = np.where((s < 1e-9)[:, None], fallback, axis)
    axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    angle = np.where((np.abs(a).sum(-1) == 0) | (np.abs(b).sum(-1) == 0), 0.0, angle)
    return rodrigues(axis * angle[:, None])


def closed_form_start(
    model: FitModel,
    keypoints_3d: np.ndarray,
    keypoints_2d: np.ndarray | None,
    K: np.ndarray,
    betas: np.ndarray | None = None,
) -> FitInit:
    """The fit's start from the landmarks alone: global rotation by Kabsch of the palm's landmarks, each
    finger bone swung (no twist) onto its landmarks' direction, root to tip, translation by least squares
    from the 2D keypoints through K ((3, 3) or (B, 3, 3); without keypoints: 0.5 m in front of the camera)."""
    km, table = model.keypoints, model.table
    B = keypoints_3d.shape[0]
    K = None if K is None else np.broadcast_to(np.asarray(K, dtype=np.float64), (B, 3, 3))
    S = km.num_betas
    betas = np.zeros((B, S)) if betas is None else np.asarray(betas, dtype=np.float64)
    X = np.asarray(keypoints_3d, dtype=np.float64)
    if keypoints_2d is not None:
        X = np.einsum("bij,bnj->bni", ray_rotation(K, keypoints_2d), X)
    flat = np.zeros((B, 48))
    flat[:, 3:] = -km.hands_mean  # the rest pose: every local rotation the identity
    rest = pose_keypoints(km, flat, betas, np.zeros((B, 3)), table.offsets).keypoints  # (B, 21, 3)
    palm = list(PALM)
    P = rest[:, palm] - rest[:, palm].mean(1, keepdims=True)
    Q = X[:, palm] - X[:, palm].mean(1, keepdims=True)
    R0 = _kabsch(P, Q)
    local = np.broadcast_to(np.eye(3), (B, 16, 3, 3)).copy()
    local[:, 0] = R0
    world = local.copy()
    parents = km.parents
    for level in SWING_LEVELS:  # all fingers at once, root to tip
        j = np.array([SWING_JOINT[m] for m in level])
        p = np.array([parents[k] for k in j])
        start = np.array([LANDMARK_PARENT[m] for m in level])
        Wp = world[:, p]  # (B, 5, 3, 3) with local[j] = I
        current = np.einsum("bkij,bkj->bki", Wp, rest[:, level] - rest[:, start])
        Sw = _swing(current.reshape(-1, 3), (X[:, level] - X[:, start]).reshape(-1, 3)).reshape(B, len(j), 3, 3)
        local[:, j] = np.swapaxes(Wp, -1, -2) @ Sw @ Wp
        world[:, j] = Sw @ Wp
    full = log_rotation(local).reshape(B, 48)
    pose = full.copy()
    pose[:, 3:] -= km.hands_mean
    seen = pose_keypoints(km, pose, betas, np.zeros((B, 3)), table.offsets_2d).keypoints
    transl = np.zeros((B, 3))
    for b in range(B):
        if keypoints_2d is None:
            transl[b] = [0.0, 0.0, 0.5] - seen[b].mean(0)
        else:
            transl[b] = solve_translation(seen[b], keypoints_2d[b], K[b], weights=table.weights_2d)
    return FitInit(pose, betas, transl)


@dataclass
class Points:
    """B hands' ``keypoints`` (B, 21, 3), ``landmarks_3d`` and ``landmarks_2d`` (B, 21, 3, offsets included) and
    ``local`` rotations (B, 16, 3, 3)."""

    keypoints: np.ndarray
    landmarks_3d: np.ndarray
    landmarks_2d: np.ndarray
    local: np.ndarray


class _Problem:
    """The residuals of the energy for B hands and their Jacobian (see :func:`fit_hand`). The variables
    are the hand's (pose 48, betas S, transl 3) and, with 3D landmarks, the similarity that carries the
    landmarks into the model's frame: a rotation increment (3) and the log of the scale (1)."""

    def __init__(self, model, weights, kp2d, K, kp3d, init, previous, use_kernel: bool | None = None):
        self.m, self.w = model, weights
        self.use_kernel = fit_kernel.available() if use_kernel is None else use_kernel
        self.kp2d, self.K, self.kp3d = kp2d, K, kp3d
        self.init, self.previous = init, previous
        self.S = model.keypoints.num_betas
        self.H = 48 + self.S + 3  # the hand's variables
        self.P = self.H + (4 if kp3d is not None else 0)
        t = model.table
        self.c3 = t.weights_3d / t.weights_3d.sum()
        if kp3d is not None:
            self.X = kp3d - np.einsum("n,bnc->bc", self.c3, kp3d)[:, None]
            self.spread = np.einsum("n,bnc->b", self.c3, self.X**2)

    def unpack(self, x):
        S = self.S
        return x[:, :48], x[:, 48 : 48 + S], x[:, 48 + S : self.H]

    def centred(self, L):
        return L - np.einsum("n,bnc->bc", self.c3, L)[:, None]

    def align(self, L):
        """(Q, scale) carrying the centred 3D landmarks onto the centred model landmarks L (B, 21, 3): the
        weighted Procrustes rotation and the scale with its prior, in closed form."""
        ell = self.centred(L)
        Q = _kabsch_from(np.einsum("n,bni,bnj->bij", self.c3, ell, self.X))
        QX = np.einsum("bij,bnj->bni", Q, self.X)
        lam = self.w.scale_prior * self.spread
        s = (np.einsum("n,bnc,bnc->b", self.c3, ell, QX) + lam) / np.maximum(self.spread + lam, 1e-12)
        return Q, np.where(self.spread > 0, np.maximum(s, 1e-3), 1.0)

    def step(self, x, Q, delta):
        """The variables after ``delta`` (B, P): the hand's added, the similarity's composed."""
        x = x + delta[:, : self.H]
        if self.kp3d is None:
            return x, Q, None
        return x, Q @ rodrigues(delta[:, self.H : self.H + 3]), delta[:, self.H + 3]

    def points(self, x, jacobian: bool = False) -> tuple[Points, tuple[np.ndarray, np.ndarray] | None]:
        """The keypoints and landmark points of ``x`` (and with ``jacobian`` the Jacobians of the 3D landmarks
        and of the 2D ones, (B, 21, 3, P) each, the similarity's columns zero): the numba kernel when it is
        available (:mod:`handssca.fit.kernel`), else numpy (:mod:`handssca.fit.keypoints`)."""
        pose, betas, transl = self.unpack(x)
        km, t = self.m.keypoints, self.m.table
        kernel_out = None
        if self.use_kernel:
            try:
                kernel_out = fit_kernel.evaluate(km, pose, betas, transl, t.offsets, t.offsets_2d, jacobian)
            except Exception as e:  # numba could not compile it here: numpy from now on, said once
                if not isinstance(e, ValueError):
                    logging.getLogger("handssca.fit").warning("the fit's numba kernel failed (%s); using numpy", e)
                    fit_kernel.disable()
                    self.use_kernel = False
                else:
                    raise
        if kernel_out is not None:
            kp, L3, L2, local, jac = kernel_out
        else:
            posed = pose_keypoints(km, pose, betas, transl)
            kp, local = posed.keypoints, posed.local
            L3, L2 = kp + offset_points(posed, t.offsets), kp + offset_points(posed, t.offsets_2d)
            jac = None
            if jacobian:
                Jk = keypoint_jacobian(km, pose, posed)
                jac = (Jk.copy(), Jk)
                jac[0][..., :48] += offset_jacobian(km, pose, posed, t.offsets)
                jac[1][..., :48] += offset_jacobian(km, pose, posed, t.offsets_2d)
        if jac is not None and self.P > self.H:  # the similarity's columns
            pad = ((0, 0), (0, 0), (0, 0), (0, self.P - self.H))
            jac = (np.pad(jac[0], pad), np.pad(jac[1], pad))
        return Points(kp, L3, L2, local), jac

    def evaluate(self, x, Q, s, depth_scale, jacobian: bool):
        """(residuals (B, N), robust cost (B,), Jacobian (B, N, P) or None, extras); ``depth_scale`` (B,)
        metres per pixel of the 2D term."""
        m, w = self.m, self.w
        pose, betas, transl = self.unpack(x)
        B = x.shape[0]
        points, jac = self.points(x, jacobian)
        Jk, Jk2 = jac if jacobian else (None, None)
        L, L2 = points.landmarks_3d, points.landmarks_2d
        res, jac, cost = [], [], np.zeros(B)
        extras = {"landmarks": L, "landmarks_2d": L2, "points": points}
        if self.kp3d is not None:
            QX = np.einsum("bij,bnj->bni", Q, self.X)
            Y = s[:, None, None] * QX
            c = np.sqrt(w.keypoints_3d * m.table.weights_3d)
            ell = self.centred(L)
            r = (ell - Y) * c[None, :, None]
            # the scale prior of :meth:`align`, weighed as the 3D term is: sum(c) |l - s Q x|^2 + lam (s - 1)^2
            lam = np.sqrt(w.scale_prior * self.spread * w.keypoints_3d * m.table.weights_3d.sum())
            rs = (lam * (s - 1.0))[:, None]
            res += [r.reshape(B, -1), rs]
            cost += (r**2).sum((1, 2)) + (rs**2).sum(1)
            extras["scale"] = s
            extras["aligned_3d"] = Y
            if jacobian:
                Jc = Jk - np.einsum("n,bncp->bcp", self.c3, Jk)[:, None]
                # d(-s Q exp(dq) x)/d dq = s Q skew(x); d(-s Q x)/d log s = -s Q x
                Jc[..., self.H : self.H + 3] = s[:, None, None, None] * np.einsum("bij,bnjk->bnik", Q, skew(self.X))
                Jc[..., self.H + 3] = -Y
                Js = np.zeros((B, 1, self.P))
                Js[:, 0, self.H + 3] = lam * s
                jac += [(Jc * c[None, :, None, None]).reshape(B, -1, self.P), Js]
        if self.kp2d is not None:
            Xc = L2
            z = np.maximum(Xc[..., 2], 1e-4)
            K = self.K
            u = K[:, None, 0, 0] * Xc[..., 0] / z + K[:, None, 0, 2]
            v = K[:, None, 1, 1] * Xc[..., 1] / z + K[:, None, 1, 2]
            e = np.stack([u, v], -1) - self.kp2d  # (B, 21, 2) pixels
            # pixels turned into metres at the hand's depth (held while a step is tried: a per-point depth
            # would let the fit shrink the error by bringing the hand nearer)
            em = e * depth_scale[:, None, None]
            norm = np.linalg.norm(em, axis=-1)
            d = w.robust_2d_m
            c = w.keypoints_2d * m.table.weights_2d
            huber = np.where(norm <= d, norm**2, 2 * d * norm - d * d)
            cost += (c * huber).sum(1)
            irls = np.where(norm <= d, 1.0, d / np.maximum(norm, 1e-12))
            sw = np.sqrt(c * irls)
            res.append((em * sw[..., None]).reshape(B, -1))
            extras["error_2d_px"] = np.linalg.norm(e, axis=-1)
            if jacobian:
                fx, fy = K[:, None, 0, 0], K[:, None, 1, 1]
                dproj = np.zeros((B, 21, 2, 3))
                dproj[..., 0, 0] = fx / z
                dproj[..., 0, 2] = -fx * Xc[..., 0] / z**2
                dproj[..., 1, 1] = fy / z
                dproj[..., 1, 2] = -fy * Xc[..., 1] / z**2
                J2 = np.einsum("bnij,bnjp->bnip", dproj, Jk2) * (depth_scale[:, None, None, None] * sw[..., None, None])
                jac.append(J2.reshape(B, -1, self.P))
        # pose prior over the finger pose
        pp = m.prior
        sp = w.pose_prior_m
        r = sp * np.einsum("ij,bj->bi", pp.sqrt_precision, pose[:, 3:] - pp.mean)
        res.append(r)
        cost += (r**2).sum(1)
        if jacobian:
            Jp = np.zeros((B, 45, self.P))
            Jp[:, :, 3:48] = sp * pp.sqrt_precision
            jac.append(Jp)
        if pp.limits is not None:
            r, Jl = self._limits(points.local, pose, jacobian)
            res.append(r)
            cost += (r**2).sum(1)
            if jacobian:
                jac.append(Jl)
        r = w.shape_m * betas
        res.append(r)
        cost += (r**2).sum(1)
        if jacobian:
            Jb = np.zeros((B, self.S, self.P))
            Jb[:, :, 48 : 48 + self.S] = w.shape_m * np.eye(self.S)
            jac.append(Jb)
        for target, weight, with_root in ((self.init, w.network_m, False), (self.previous, w.temporal_m, True)):
            if target is None or weight <= 0:
                continue
            r, J = self._towards(target, pose, betas, transl, weight, with_root)
            res.append(r)
            cost += (r**2).sum(1)
            if jacobian:
                jac.append(J)
        r = np.concatenate(res, 1)
        return r, cost, (np.concatenate(jac, 1) if jacobian else None), extras

    def _limits(self, local, pose, jacobian):
        pp, sl = self.m.prior, self.w.limits_m_per_rad
        B = pose.shape[0]
        r = sl * limit_violation(local, pp).reshape(B, 45)
        if not jacobian:
            return r, None
        J = np.zeros((B, 45, self.P))
        if not r.any():  # inside every limit: no pull, no derivative
            return r, J
        full = pose.reshape(B, 16, 3).copy()
        full[:, 1:] += self.m.keypoints.hands_mean.reshape(15, 3)
        eps = 1e-7
        base = r.reshape(B, 15, 3)
        for c in range(3):  # each joint's angles depend on its own rotation only: one difference per axis
            d = np.zeros(3)
            d[c] = eps
            g = (sl * limit_violation(rodrigues(full + d), pp).reshape(B, 15, 3) - base) / eps  # (B, 15, 3)
            for j in range(15):
                J[:, 3 * j : 3 * j + 3, 3 + 3 * j + c] = g[:, j]
        return r, J

    def _towards(self, target, pose, betas, transl, weight, with_root):
        B = pose.shape[0]
        pp = self.m.prior
        parts = [np.einsum("ij,bj->bi", pp.sqrt_precision, pose[:, 3:] - target.pose[:, 3:]), betas - target.betas]
        J = [np.zeros((B, 45, self.P)), np.zeros((B, self.S, self.P))]
        J[0][:, :, 3:48] = pp.sqrt_precision
        J[1][:, :, 48 : 48 + self.S] = np.eye(self.S)
        if with_root:  # global rotation (its angle to the target's, per 0.1 rad) and translation (per cm)
            diff = log_rotation(np.swapaxes(rodrigues(target.pose[:, :3]), -1, -2) @ rodrigues(pose[:, :3]))
            parts += [diff / 0.1, (transl - target.transl) / 0.01]
            Jr, Jt = np.zeros((B, 3, self.P)), np.zeros((B, 3, self.P))
            Jr[:, :, :3] = inverse_right_jacobian(diff) @ right_jacobian(pose[:, :3]) / 0.1
            Jt[:, :, 48 + self.S : self.H] = np.eye(3) / 0.01
            J += [Jr, Jt]
        return weight * np.concatenate(parts, 1), weight * np.concatenate(J, 1)


def usable(
    result: FitResult, keypoints_2d: np.ndarray, pixel_scale: float = 1.0
) -> tuple[np.ndarray, list[str | None]]:
    """((B,) bool, why not) for each fitted hand: finite, and within :data:`MAX_RESIDUAL_2D` of its 2D keypoints
    (B, 21, 2) and :data:`MAX_RESIDUAL_3D_M` of its 3D landmarks (when it had them). ``pixel_scale``: the
    pixels of the reason's numbers per pixel of ``keypoints_2d`` (a picture fitted at a reduced working
    resolution is reported in its own pixels)."""
    size = np.maximum(np.ptp(np.asarray(keypoints_2d, dtype=np.float64), axis=1).max(1), 1.0)
    ok, why = [], []
    for b in range(len(size)):
        values = (result.pose[b], result.betas[b], result.transl[b], result.joints[b], result.residual_2d_px[b])
        if not result.valid[b] or not all(np.isfinite(v).all() for v in values):
            ok.append(False)
            why.append("the landmarks or the fit are not finite numbers")
        elif result.residual_2d_px[b] > MAX_RESIDUAL_2D * size[b]:
            ok.append(False)
            why.append(
                f"the fit ended {result.residual_2d_px[b] * pixel_scale:.1f} px from the 2D landmarks on average (more than "
                f"{MAX_RESIDUAL_2D:.0%} of the hand's size): the landmarks disagree"
            )
        elif np.isfinite(result.residual_3d_m[b]) and result.residual_3d_m[b] > MAX_RESIDUAL_3D_M:
            ok.append(False)
            why.append(
                f"the fit ended {result.residual_3d_m[b] * 1000:.1f} mm from the 3D landmarks on average (more than "
                f"{MAX_RESIDUAL_3D_M * 1000:.0f} mm): the landmarks disagree"
            )
        else:
            ok.append(True)
            why.append(None)
    return np.array(ok, dtype=bool), why


def _kabsch_from(A: np.ndarray) -> np.ndarray:
    """(B, 3, 3) the rotation Q maximising trace(Q^T A) for cross-covariances A (B, 3, 3)."""
    U, _, Vt = np.linalg.svd(A)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.broadcast_to(np.eye(3), A.shape).copy()
    D[:, 2, 2] = np.where(d == 0, 1.0, d)
    return U @ D @ Vt


#: One fit at a time changes the process-wide BLAS thread count (and puts it back).
_BLAS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (None without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread():
    """A context in which numpy's BLAS runs on the calling thread only (threadpoolctl), one such context at
    a time. The fit's matrices are small: BLAS worker threads gain nothing there, and left spinning after a
    call they slowed the detector and the network that ran next by ~24 ms on 2 cores (``benchmarks/README.md``)."""
    controller = _blas_controller()
    if controller is None:  # pragma: no cover
        yield
        return
    with _BLAS_LOCK, controller.limit(limits=1, user_api="blas"):
        yield


def fit_hand(
    model: FitModel,
    keypoints_2d: np.ndarray | None,
    K: np.ndarray | None,
    keypoints_3d: np.ndarray | None,
    init: FitInit | None = None,
    weights: FitWeights | None = None,
    previous: FitInit | None = None,
    iterations: int = 20,
    tolerance: float = 1e-3,
) -> FitResult:
    """Fit B right hands to their landmarks (see the module docstring).

    ``keypoints_2d`` (B, 21, 2) pixels with ``K`` (3, 3) or (B, 3, 3); ``keypoints_3d`` (B, 21, 3) metres,
    the image's axes (x right, y down, z away), any origin and scale; either may be None (not both).
    ``init``: the network's parameters: the start when there are no 3D landmarks, and the target of the
    ``network_m`` pull. ``previous``: the last frame's fit, the target of the ``temporal_m`` pull.
    ``iterations``: at most this many Levenberg-Marquardt steps; a hand stops when a step lowers its energy
    by less than ``tolerance`` (relative). Returns :class:`FitResult`; never NaN (a hand whose fit fails keeps its start, ``converged`` False).
    numpy's BLAS runs on one thread meanwhile (:func:`one_blas_thread`)."""
    with one_blas_thread():
        return _fit_hand(model, keypoints_2d, K, keypoints_3d, init, weights, previous, iterations, tolerance)


def _fit_hand(
    model: FitModel,
    keypoints_2d: np.ndarray | None,
    K: np.ndarray | None,
    keypoints_3d: np.ndarray | None,
    init: FitInit | None = None,
    weights: FitWeights | None = None,
    previous: FitInit | None = None,
    iterations: int = 20,
    tolerance: float = 1e-3,
) -> FitResult:
    """:func:`fit_hand` without the BLAS thread limit."""
    weights = FitWeights() if weights is None else weights
    if keypoints_2d is None and keypoints_3d is None:
        raise ValueError("fit_hand: give keypoints_2d (with K) or keypoints_3d")
    kp2d = None if keypoints_2d is None else np.asarray(keypoints_2d, dtype=np.float64)
    kp3d = None if keypoints_3d is None else np.asarray(keypoints_3d, dtype=np.float64)
    B = (kp2d if kp2d is not None else kp3d).shape[0]
    if kp2d is not None:
        if K is None:
            raise ValueError("fit_hand: keypoints_2d need the camera K")
        K = np.broadcast_to(np.asarray(K, dtype=np.float64), (B, 3, 3)).copy()
    for name, a, d in (("keypoints_2d", kp2d, 2), ("keypoints_3d", kp3d, 3)):
        if a is not None and a.shape != (B, 21, d):
            raise ValueError(f"fit_hand: {name}: expected ({B}, 21, {d}); got {a.shape}")
    # a hand whose landmarks are not finite is fitted to a stand-in (the rest pose) and marked failed
    bad = np.zeros(B, dtype=bool)
    rest = None
    for a in (kp2d, kp3d):
        if a is not None:
            bad |= ~np.isfinite(a).all((1, 2))
    if bad.any():
        flat = np.zeros((B, 48))
        flat[:, 3:] = -model.keypoints.hands_mean
        rest = pose_keypoints(
            model.keypoints, flat, np.zeros((B, model.keypoints.num_betas)), np.tile([0, 0, 0.5], (B, 1))
        )
        if kp3d is not None:
            kp3d = np.where(bad[:, None, None], rest.keypoints, kp3d)
        if kp2d is not None:
            p = np.einsum("bij,bnj->bni", K, rest.keypoints)
            kp2d = np.where(bad[:, None, None], p[..., :2] / p[..., 2:], kp2d)
    if kp3d is not None:
        start = closed_form_start(model, kp3d, kp2d, K)  # the landmarks decide: the mean shape to start
    elif init is not None:
        start = FitInit(*(np.array(a, dtype=np.float64) for a in (init.pose, init.betas, init.transl)))
    else:
        raise ValueError("fit_hand: without keypoints_3d, give init (the network's parameters) to start from")
    prob = _Problem(model, weights, kp2d, K, kp3d, init, previous)
    x = np.concatenate([start.pose, start.betas, start.transl], 1)
    ok_start = np.isfinite(x).all(1) & ~bad
    x[~ok_start] = 0.0
    x[~ok_start, prob.H - 1] = 0.5

    f = np.ones(B) if K is None else (K[:, 0, 0] + K[:, 1, 1]) / 2

    def depth_scale_of(points: Points) -> np.ndarray:
        return np.maximum(points.keypoints[..., 2].mean(1), 1e-3) / f

    points = prob.points(x)[0]
    ds = depth_scale_of(points)
    Q, s = prob.align(points.landmarks_3d) if kp3d is not None else (None, None)
    r, cost, J, ex = prob.evaluate(x, Q, s, ds, True)
    start_2d = ex["error_2d_px"].mean(1) if kp2d is not None else np.full(B, np.nan)
    lam = np.full(B, 1e-3)
    active = ok_start & np.isfinite(cost)
    steps = np.zeros(B, dtype=np.int64)
    converged = np.zeros(B, dtype=bool)
    eye = np.eye(prob.P)
    for _ in range(iterations):
        if not active.any():
            break
        Jt = np.swapaxes(J, 1, 2)
        H = Jt @ J
        g = (Jt @ r[..., None])[..., 0]
        diag = np.einsum("bpp->bp", H)
        A = H + lam[:, None, None] * (eye * (diag[:, None, :] + 1e-9))
        A[~active] = eye
        g[~active] = 0.0
        try:
            delta = -np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:  # a singular or non-finite system: those hands stop
            delta = np.zeros_like(g)
            for b in np.nonzero(active)[0]:
                try:
                    delta[b] = -np.linalg.solve(A[b], g[b])
                except np.linalg.LinAlgError:
                    active[b] = False
        delta[~active | ~np.isfinite(delta).all(1)] = 0.0
        x_new, Q_new, dlog = prob.step(x, Q, delta)
        s_new = None if s is None else s * np.exp(dlog)
        # the trial's Jacobian too: most steps are taken, and then it is the next step's
        r_new, cost_new, J_new, ex_new = prob.evaluate(x_new, Q_new, s_new, ds, True)
        better = active & np.isfinite(cost_new) & (cost_new < cost)
        small = better & ((cost - cost_new) < tolerance * cost + 1e-16)
        steps += active
        lam = np.where(better, np.maximum(lam / 5, 1e-9), lam * 10)
        converged |= small | (active & (lam >= 1e2))  # no step lowers the energy any more
        active &= ~converged
        x[better], r[better], cost[better], J[better] = x_new[better], r_new[better], cost_new[better], J_new[better]
        if s is not None:
            Q[better], s[better] = Q_new[better], s_new[better]
        # the 2D term's metres per pixel follow the hand's depth; where it moved, the energy is measured anew
        depth = depth_scale_of(ex_new["points"])
        moved = better & (np.abs(depth / ds - 1) > 0.05)
        if moved.any():
            ds = np.where(moved, depth, ds)
            r2, c2, J2, _ = prob.evaluate(x, Q, s, ds, True)
            r[moved], cost[moved], J[moved] = r2[moved], c2[moved], J2[moved]
    ex = prob.evaluate(x, Q, s, ds, False)[3]
    pose, betas, transl = prob.unpack(x)
    pose = pose.copy()
    pose[:, :3] = canonical_rotvec(pose[:, :3])  # one representation of the global rotation (angle <= pi)
    joints = ex["points"].keypoints
    if kp3d is not None:
        res3 = np.linalg.norm(prob.centred(ex["landmarks"]) - ex["aligned_3d"], axis=-1).mean(1)
        scale = ex["scale"]
    else:
        res3, scale = np.full(B, np.nan), np.ones(B)
    return FitResult(
        pose=pose.copy(),
        betas=betas.copy(),
        transl=transl.copy(),
        joints=joints,
        landmarks=ex["landmarks"],
        landmarks_2d=ex["landmarks_2d"],
        scale=scale,
        residual_2d_px=ex["error_2d_px"].mean(1) if kp2d is not None else np.full(B, np.nan),
        residual_2d_px_start=start_2d,
        residual_3d_m=res3,
        iterations=steps,
        converged=converged & ok_start & np.isfinite(x).all(1),
        valid=ok_start & np.isfinite(x).all(1) & np.isfinite(cost),
        cost=cost,
    )
