"""The 21 keypoints of a MANO-format hand and their Jacobian, as small pure numpy functions.

Only what the 21 keypoints need is kept from a :class:`~handssca.hand.HandModel`: the 16 rest joints and the
5 fingertip vertices (their shape and pose correctives and skinning weights), so that posing them costs a
few microseconds per hand. :func:`pose_keypoints` equals ``HandModel.forward(...)["joints"]`` (float64) and
:func:`keypoint_jacobian` is its exact derivative with respect to the pose (axis-angle, 48), the shape (10)
and the translation (3).

Each keypoint can carry an offset rigid with one bone (``offsets``, (21, 3) metres in the rest pose's
frame): a landmark of a detector is not a rotation centre or a tip vertex (see :mod:`handssca.fit.table`).
Batched over hands: arrays lead with B. Frames: the model's (MANO: metres), translation added last.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from handssca.hand.joint_orders import MANO_TO_FREIHAND

#: Per keypoint (FreiHAND order): the MANO joint whose bone carries it (its own joint; a tip's last joint).
KEYPOINT_BONE = np.array([0, 13, 14, 15, 15, 1, 2, 3, 3, 4, 5, 6, 6, 10, 11, 12, 12, 7, 8, 9, 9])


@dataclass(frozen=True, eq=False)
class KeypointModel:
    """The arrays of a hand model that its 21 keypoints depend on (float64, right or left as the model).

    ``joints`` (16, 3) and ``joint_dirs`` (16, 3, S): rest joints = joints + joint_dirs @ betas;
    ``tips`` (5, 3), ``tip_dirs`` (5, 3, S), ``tip_posedirs`` (5, 3, 135) and ``tip_weights`` (5, 16): the
    fingertip vertices; ``parents`` (16,); ``hands_mean`` (45,) added to the finger pose (zeros for a
    flat-hand-mean model)."""

    joints: np.ndarray
    joint_dirs: np.ndarray
    tips: np.ndarray
    tip_dirs: np.ndarray
    tip_posedirs: np.ndarray
    tip_weights: np.ndarray
    parents: tuple[int, ...]
    hands_mean: np.ndarray

    @classmethod
    def from_hand(cls, hand) -> KeypointModel:
        """From a :class:`~handssca.hand.HandModel` (its buffers; any dtype or device)."""

        def a(t) -> np.ndarray:
            return t.detach().cpu().double().numpy()

        J = a(hand.J_regressor)
        tip_ids = a(hand.tip_ids).astype(np.int64)
        shapedirs = a(hand.shapedirs)
        return cls(
            joints=J @ a(hand.v_template),
            joint_dirs=np.einsum("jv,vcs->jcs", J, shapedirs),
            tips=a(hand.v_template)[tip_ids],
            tip_dirs=shapedirs[tip_ids],
            tip_posedirs=a(hand.posedirs)[tip_ids],
            tip_weights=a(hand.lbs_weights)[tip_ids],
            parents=tuple(int(p) for p in hand.parents),
            hands_mean=a(hand.hands_mean),
        )

    @property
    def num_betas(self) -> int:
        return int(self.joint_dirs.shape[2])

    @cached_property
    def masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kinematic masks of :func:`keypoint_jacobian` (computed once)."""
        return _chain_masks(self)

    def ancestry(self) -> np.ndarray:
        """(16, 16) bool: [i, j] when joint i is j or one of its ancestors."""
        A = np.eye(16, dtype=bool)
        for j in range(16):
            p = self.parents[j]
            while p >= 0:
                A[p, j] = True
                p = self.parents[p]
        return A


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) the cross-product matrix: skew(a) @ b = a x b."""
    out = np.zeros(v.shape + (3,))
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    out[..., 0, 1], out[..., 0, 2] = -z, y
    out[..., 1, 0], out[..., 1, 2] = z, -x
    out[..., 2, 0], out[..., 2, 1] = -y, x
    return out


def _sin_terms(aa: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(theta^2, sin(t)/t, (1 - cos t)/t^2, (t - sin t)/t^3) of axis-angles (..., 3), each (..., 1, 1), with
    their Taylor series near 0."""
    t2 = (aa * aa).sum(-1)[..., None, None]
    small = t2 < 1e-10
    safe2 = np.where(small, 1.0, t2)
    t = np.sqrt(safe2)
    sin, cos = np.sin(t), np.cos(t)
    a = np.where(small, 1 - t2 / 6, sin / t)
    b = np.where(small, 0.5 - t2 / 24, (1 - cos) / safe2)
    c = np.where(small, 1.0 / 6 - t2 / 120, (t - sin) / (safe2 * t))
    return t2, a, b, c


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3), exact near 0."""
    _, a, b, _ = _sin_terms(aa)
    K = skew(aa)
    return np.eye(3) + a * K + b * (K @ K)


def right_jacobian(aa: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) J_r of SO(3): exp(aa + d) = exp(aa) exp(J_r(aa) d) to first order."""
    _, _, b, c = _sin_terms(aa)
    K = skew(aa)
    return np.eye(3) - b * K + c * (K @ K)


def inverse_right_jacobian(w: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) the inverse of :func:`right_jacobian`: d log(R0^T exp(phi)) / d phi = J_r^-1(w) J_r(phi)
    for w = log(R0^T exp(phi))."""
    t2 = (w * w).sum(-1)[..., None, None]
    small = t2 < 1e-8
    safe2 = np.where(small, 1.0, t2)
    t = np.sqrt(safe2)
    coef = np.where(small, 1.0 / 12 + t2 / 720, 1 / safe2 - (1 + np.cos(t)) / (2 * t * np.sin(np.where(small, 1.0, t))))
    K = skew(w)
    return np.eye(3) + 0.5 * K + coef * (K @ K)


def canonical_rotvec(v: np.ndarray) -> np.ndarray:
    """Axis-angles (..., 3) turned by at most pi: the same rotations, one representation each."""
    v = np.asarray(v, dtype=np.float64)
    t = np.linalg.norm(v, axis=-1, keepdims=True)
    wrap = t > np.pi
    return np.where(wrap, v * (t - 2 * np.pi * np.ceil((t - np.pi) / (2 * np.pi))) / np.where(wrap, t, 1.0), v)


def nearest_rotvec(v: np.ndarray, to: np.ndarray) -> np.ndarray:
    """The representation of the rotations ``v`` (..., 3) nearest to the axis-angles ``to`` (for filtering and
    pulling rotations as vectors: theta about a and 2 pi - theta about -a are the same rotation)."""
    v = canonical_rotvec(v)
    t = np.linalg.norm(v, axis=-1, keepdims=True)
    other = np.where(t > 1e-12, v - 2 * np.pi * v / np.maximum(t, 1e-12), v)
    closer = np.linalg.norm(other - to, axis=-1, keepdims=True) < np.linalg.norm(v - to, axis=-1, keepdims=True)
    return np.where(closer, other, v)


def log_rotation(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3); exact near 0 and up to pi."""
    c = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.linalg.norm(v, axis=-1) / 2
    theta = np.arctan2(s, c)
    out = v * np.where(s > 1e-8, theta / np.maximum(2 * s, 1e-300), 0.5 + theta**2 / 12)[..., None]
    near_pi = c < -0.99
    if np.any(near_pi):  # sin(theta) ~ 0: the axis from the symmetric part, R + R^T = 2 cos I + 2(1 - cos) a a^T
        S = (R[near_pi] + np.swapaxes(R[near_pi], -1, -2)) / 2 - c[near_pi][:, None, None] * np.eye(3)
        k = np.argmax(np.diagonal(S, axis1=-2, axis2=-1), axis=-1)
        axis = S[np.arange(len(k)), k]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        sign = np.sign((axis * v[near_pi]).sum(-1))
        axis *= np.where(sign == 0, 1.0, sign)[:, None]
        out[near_pi] = axis * theta[near_pi][:, None]
    return out


@dataclass
class Posed:
    """The posed skeleton of B hands (see :func:`pose_keypoints`)."""

    keypoints: np.ndarray  # (B, 21, 3) FreiHAND order, offsets included
    origins: np.ndarray  # (B, 16, 3) posed joints (MANO order), translation included
    world: np.ndarray  # (B, 16, 3, 3) world rotation of each joint
    local: np.ndarray  # (B, 16, 3, 3) local rotations
    rest_joints: np.ndarray  # (B, 16, 3)
    tip_points: np.ndarray  # (B, 5, 16, 3) each tip as moved by each joint's transform
    tip_rest: np.ndarray  # (B, 5, 3) rest tips with shape and pose correctives
    offsets_world: np.ndarray  # (B, 21, 3) the offsets as posed


def pose_keypoints(
    model: KeypointModel,
    pose: np.ndarray,
    betas: np.ndarray,
    transl: np.ndarray,
    offsets: np.ndarray | None = None,
) -> Posed:
    """Pose B hands. ``pose`` (B, 48) axis-angle: global orientation then 15 finger joints relative to
    ``hands_mean`` (MANO's convention, as the network predicts); ``betas`` (B, S); ``transl`` (B, 3) added
    after the global rotation about the root joint; ``offsets`` (21, 3) rest-frame vectors carried by each
    keypoint's bone (:data:`KEYPOINT_BONE`). Returns :class:`Posed`; ``keypoints`` without offsets equal
    ``HandModel.forward(...)["joints"] + transl``."""
    pose = np.asarray(pose, dtype=np.float64)
    B = pose.shape[0]
    full = pose.reshape(B, 16, 3).copy()
    full[:, 1:] += model.hands_mean.reshape(15, 3)
    R = rodrigues(full)
    rest = model.joints + np.einsum("jcs,bs->bjc", model.joint_dirs, betas)
    world = np.empty_like(R)
    origins = np.empty_like(rest)
    world[:, 0], origins[:, 0] = R[:, 0], rest[:, 0]
    for j in range(1, 16):
        p = model.parents[j]
        world[:, j] = world[:, p] @ R[:, j]
        origins[:, j] = origins[:, p] + np.einsum("bcd,bd->bc", world[:, p], rest[:, j] - rest[:, p])
    origins += transl[:, None]
    feats = (R[:, 1:] - np.eye(3)).reshape(B, 135)
    tip_rest = model.tips + np.einsum("kcs,bs->bkc", model.tip_dirs, betas)
    tip_rest = tip_rest + np.einsum("kcp,bp->bkc", model.tip_posedirs, feats)
    # each tip moved by each joint's rigid transform, then blended by its skinning weights
    tip_points = np.einsum("bjcd,bkjd->bkjc", world, tip_rest[:, :, None] - rest[:, None]) + origins[:, None]
    tips = np.einsum("kj,bkjc->bkc", model.tip_weights, tip_points)
    kp = np.concatenate([origins, tips], axis=1)[:, MANO_TO_FREIHAND]
    off = np.zeros((B, 21, 3))
    if offsets is not None:
        off = np.einsum("bkcd,kd->bkc", world[:, KEYPOINT_BONE], np.asarray(offsets, dtype=np.float64))
    return Posed(kp + off, origins, world, R, rest, tip_points, tip_rest, off)


def _chain_masks(model: KeypointModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(joint_mask (21, 16): keypoint m is a joint moved by joint i (a strict ancestor); tip_below (21, 16, 16):
    [m, i, j] the skinning weight of joint j on tip keypoint m when i is j or its ancestor; bone_mask (21, 16):
    i is the keypoint's bone or its ancestor)."""
    anc = model.ancestry()
    joint_mask = np.zeros((21, 16))
    tip_below = np.zeros((21, 16, 16))
    for m, s in enumerate(MANO_TO_FREIHAND):
        if s < 16:
            joint_mask[m] = anc[:, s]
            joint_mask[m, s] = 0.0
        else:
            tip_below[m] = anc * model.tip_weights[s - 16][None]
    return joint_mask, tip_below, anc[:, KEYPOINT_BONE].T.astype(np.float64)


def offset_points(posed: Posed, offsets: np.ndarray) -> np.ndarray:
    """(B, 21, 3) rest-frame offsets (21, 3) carried by each keypoint's bone, as posed."""
    return np.einsum("bkcd,kd->bkc", posed.world[:, KEYPOINT_BONE], np.asarray(offsets, dtype=np.float64))


def offset_jacobian(model: KeypointModel, pose: np.ndarray, posed: Posed, offsets: np.ndarray) -> np.ndarray:
    """(B, 21, 3, 48) derivative of :func:`offset_points` with respect to the pose (the rest is 0)."""
    B = pose.shape[0]
    full = pose.reshape(B, 16, 3).copy()
    full[:, 1:] += model.hands_mean.reshape(15, 3)
    ow = offset_points(posed, offsets)
    bone_mask = model.masks[2]  # (21, 16)
    WJ = posed.world @ right_jacobian(full)
    J = -skew(bone_mask[None, :, :, None] * ow[:, :, None]) @ WJ[:, None]  # (B, 21, 16, 3, 3)
    return np.moveaxis(J, 2, 3).reshape(B, 21, 3, 48)


def keypoint_jacobian(model: KeypointModel, pose: np.ndarray, posed: Posed) -> np.ndarray:
    """(B, 21, 3, 48 + S + 3) derivative of :func:`pose_keypoints`'s keypoints with respect to
    (pose (48), betas (S), transl (3)), at ``pose`` (B, 48) whose posing is ``posed``."""
    B = pose.shape[0]
    S = model.num_betas
    full = pose.reshape(B, 16, 3).copy()
    full[:, 1:] += model.hands_mean.reshape(15, 3)
    o, W = posed.origins, posed.world
    src = MANO_TO_FREIHAND  # keypoint m is joint src[m] (< 16) or tip src[m] - 16
    joint_mask, tip_below, bone_mask = model.masks
    # rotation part: d keypoint / d (world rotation vector at joint i) = -skew(arm); for a rigid point
    # arm = point - o_i over the joints that move it; a tip blends its joints' transforms
    kp_plain = posed.keypoints - posed.offsets_world
    arm = joint_mask[None, :, :, None] * (kp_plain[:, :, None] - o[:, None])
    tips = src >= 16
    tip_points = posed.tip_points[:, src[tips] - 16]  # (B, 5, 16, 3)
    below = tip_below[tips]  # (5, 16, 16)
    arm[:, tips] = np.einsum("kij,bkjc->bkic", below, tip_points) - below.sum(2)[None, :, :, None] * o[:, None]
    arm += bone_mask[None, :, :, None] * posed.offsets_world[:, :, None]
    Jr = right_jacobian(full)  # (B, 16, 3, 3)
    WJ = W @ Jr  # world rotation vector per unit axis-angle change
    Jrot = -skew(arm) @ WJ[:, None]  # (B, 21, 16, 3, 3)
    # pose correctives of the tips: d tip_rest / d local rotation of joints 1..15
    basis = skew(np.eye(3))  # basis[c] = skew(e_c)
    dR = np.einsum("bjrs,csu->bjcru", posed.local[:, 1:], basis)  # (B, 15, 3(c), 3, 3): R_i skew(e_c)
    dfeat = np.einsum("bjcru,bjcd->bjrud", dR, Jr[:, 1:])  # (B, 15, 3, 3, 3(d))
    dfeat = dfeat.reshape(B, 15, 9, 3)
    P = model.tip_posedirs.reshape(5, 3, 15, 9)
    dtip_rest = np.einsum("kcjf,bjfd->bkcjd", P, dfeat)  # (B, 5, 3, 15, 3)
    blend = np.einsum("kj,bjcd->bkcd", model.tip_weights, W)  # (B, 5, 3, 3)
    dtip = np.einsum("bkce,bkejd->bkcjd", blend, dtip_rest)
    for k in range(5):
        m = int(np.nonzero(src == 16 + k)[0][0])
        Jrot[:, m, 1:] += np.moveaxis(dtip[:, k], 2, 1)
    # shape: d origins / d betas along the chain, then the tips' blend
    dO = np.zeros((B, 16, 3, S))
    dO[:, 0] = model.joint_dirs[0]
    for j in range(1, 16):
        p = model.parents[j]
        dO[:, j] = dO[:, p] + np.einsum("bcd,ds->bcs", W[:, p], model.joint_dirs[j] - model.joint_dirs[p])
    dtip_beta = np.einsum(
        "kj,bjcd,kjds->bkcs", model.tip_weights, W, model.tip_dirs[:, None] - model.joint_dirs[None]
    ) + np.einsum("kj,bjcs->bkcs", model.tip_weights, dO)
    Jbeta = np.concatenate([dO, dtip_beta], axis=1)[:, src]
    J = np.zeros((B, 21, 3, 48 + S + 3))
    J[..., :48] = np.moveaxis(Jrot, 2, 3).reshape(B, 21, 3, 48)
    J[..., 48 : 48 + S] = Jbeta
    J[..., 48 + S :] = np.eye(3)
    return J
