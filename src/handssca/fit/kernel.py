"""The landmark fit's inner loop in one numba kernel: the 21 keypoints of B hands, their two offset
landmark sets and the exact Jacobians, as :func:`handssca.fit.keypoints.pose_keypoints`,
:func:`~handssca.fit.keypoints.keypoint_jacobian` and :func:`~handssca.fit.keypoints.offset_jacobian` compute them
with numpy (the reference the tests compare it to). The arithmetic is a few thousand operations per hand:
with numpy the time goes to ~60 calls' dispatch per evaluation; here it is one call. Compiled on first use
(cached on disk); :func:`available` is False where numba does not import, and the numpy path is used.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from handssca.fit.keypoints import KEYPOINT_BONE, KeypointModel

try:  # numba is a dependency, but a broken install must not break the fit
    from numba import njit

    _IMPORT_ERROR: str | None = None
except Exception as e:  # pragma: no cover - only where numba is missing
    njit = None
    _IMPORT_ERROR = f"{type(e).__name__}: {e}"


def available() -> bool:
    return njit is not None


def _arrays(model: KeypointModel) -> tuple:
    """The model's arrays in the kernel's layout (cached on the model)."""
    cached = model.__dict__.get("_kernel_arrays")
    if cached is None:
        from handssca.hand.joint_orders import MANO_TO_FREIHAND

        joint_mask, tip_below, bone_mask = model.masks
        cached = (
            np.ascontiguousarray(model.joints),
            np.ascontiguousarray(model.joint_dirs),
            np.ascontiguousarray(model.tips),
            np.ascontiguousarray(model.tip_dirs),
            np.ascontiguousarray(model.tip_posedirs.reshape(5, 3, 15, 9)),
            np.ascontiguousarray(model.tip_weights),
            np.asarray(model.parents, dtype=np.int64),
            np.ascontiguousarray(model.hands_mean.reshape(15, 3)),
            np.asarray(MANO_TO_FREIHAND, dtype=np.int64),
            np.asarray(KEYPOINT_BONE, dtype=np.int64),
            np.ascontiguousarray(joint_mask),
            np.ascontiguousarray(tip_below),
            np.ascontiguousarray(bone_mask),
        )
        model.__dict__["_kernel_arrays"] = cached
    return cached


def evaluate(model: KeypointModel, pose, betas, transl, offsets3, offsets2, jacobian: bool):
    """For B hands: (keypoints (B, 21, 3), 3D landmarks, 2D landmark points (B, 21, 3), local rotations
    (B, 16, 3, 3), and with ``jacobian`` the Jacobians of the two landmark sets (B, 21, 3, 48 + S + 3) each)."""
    B, S = pose.shape[0], model.num_betas
    if np.shape(betas) != (B, S) or np.shape(pose) != (B, 48) or np.shape(transl) != (B, 3):
        raise ValueError(f"fit kernel: expected pose ({B}, 48), betas ({B}, {S}), transl ({B}, 3)")
    _announce_compile()
    kp, L3, L2 = (np.empty((B, 21, 3)) for _ in range(3))
    local = np.empty((B, 16, 3, 3))
    J3 = np.zeros((B, 21, 3, 51 + S) if jacobian else (0, 21, 3, 51 + S))
    J2 = np.zeros_like(J3)
    _kernel(
        np.ascontiguousarray(pose, dtype=np.float64),
        np.ascontiguousarray(betas, dtype=np.float64),
        np.ascontiguousarray(transl, dtype=np.float64),
        np.ascontiguousarray(offsets3, dtype=np.float64),
        np.ascontiguousarray(offsets2, dtype=np.float64),
        *_arrays(model),
        jacobian,
        kp,
        L3,
        L2,
        local,
        J3,
        J2,
    )
    return kp, L3, L2, local, (J3, J2) if jacobian else None


def _impl(
    pose, betas, transl, off3, off2, J0, JD, T0, TD, TP, TW, parents, mean, src, bone, jmask, below, bmask,
    jacobian, kp, L3, L2, local, J3, J2,
):  # fmt: skip
    B, S = pose.shape[0], betas.shape[1]
    eye = np.eye(3)
    for b in range(B):
        # local rotations (Rodrigues) and their right Jacobians
        R = np.empty((16, 3, 3))
        Jr = np.empty((16, 3, 3))
        for j in range(16):
            a = pose[b, 3 * j : 3 * j + 3].copy()
            if j > 0:
                a += mean[j - 1]
            t2 = a[0] * a[0] + a[1] * a[1] + a[2] * a[2]
            K = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
            KK = K @ K
            if t2 < 1e-10:
                s1, c1, c2 = 1 - t2 / 6, 0.5 - t2 / 24, 1.0 / 6 - t2 / 120
            else:
                t = np.sqrt(t2)
                s1, c1, c2 = np.sin(t) / t, (1 - np.cos(t)) / t2, (t - np.sin(t)) / (t2 * t)
            R[j] = eye + s1 * K + c1 * KK
            Jr[j] = eye - c1 * K + c2 * KK
            local[b, j] = R[j]
        # rest joints, forward kinematics
        rest = J0.copy()
        for j in range(16):
            for c in range(3):
                for s in range(S):
                    rest[j, c] += JD[j, c, s] * betas[b, s]
        W = np.empty((16, 3, 3))
        o = np.empty((16, 3))
        W[0] = R[0]
        o[0] = rest[0]
        for j in range(1, 16):
            p = parents[j]
            W[j] = W[p] @ R[j]
            o[j] = o[p] + W[p] @ (rest[j] - rest[p])
        for j in range(16):
            o[j] += transl[b]
        # the tips: shape and pose correctives, each joint's transform, blended
        feats = np.empty((15, 9))
        for j in range(15):
            feats[j] = (R[j + 1] - eye).reshape(9)
        tip_rest = np.empty((5, 3))
        tip_pts = np.empty((5, 16, 3))
        tips = np.zeros((5, 3))
        for k in range(5):
            tr = T0[k].copy()
            for c in range(3):
                for s in range(S):
                    tr[c] += TD[k, c, s] * betas[b, s]
                for j in range(15):
                    for f in range(9):
                        tr[c] += TP[k, c, j, f] * feats[j, f]
            tip_rest[k] = tr
            for j in range(16):
                tip_pts[k, j] = W[j] @ (tr - rest[j]) + o[j]
                tips[k] += TW[k, j] * tip_pts[k, j]
        for m in range(21):
            s_ = src[m]
            kp[b, m] = o[s_] if s_ < 16 else tips[s_ - 16]
            ow3 = W[bone[m]] @ off3[m]
            ow2 = W[bone[m]] @ off2[m]
            L3[b, m] = kp[b, m] + ow3
            L2[b, m] = kp[b, m] + ow2
        if not jacobian:
            continue
        WJ = np.empty((16, 3, 3))
        for i in range(16):
            WJ[i] = W[i] @ Jr[i]
        # rotations: d point / d axis-angle of joint i = -skew(arm) W_i J_r(i)
        for m in range(21):
            s_ = src[m]
            ow3 = W[bone[m]] @ off3[m]
            ow2 = W[bone[m]] @ off2[m]
            for i in range(16):
                arm = np.zeros(3)
                if s_ < 16:
                    if jmask[m, i] != 0.0:
                        arm = kp[b, m] - o[i]
                else:
                    k = s_ - 16
                    tot = 0.0
                    for j in range(16):
                        wgt = below[m, i, j]
                        if wgt != 0.0:
                            arm = arm + wgt * tip_pts[k, j]
                            tot += wgt
                    arm = arm - tot * o[i]
                for which in range(2):
                    a = arm + bmask[m, i] * (ow3 if which == 0 else ow2)
                    if a[0] == 0.0 and a[1] == 0.0 and a[2] == 0.0:
                        continue
                    Ka = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
                    blk = -(Ka @ WJ[i])
                    if which == 0:
                        J3[b, m, :, 3 * i : 3 * i + 3] += blk
                    else:
                        J2[b, m, :, 3 * i : 3 * i + 3] += blk
        # the tips' pose correctives: d tip_rest / d axis-angle of joints 1..15, through the blend
        for k in range(5):
            m = 0
            for mm in range(21):
                if src[mm] == 16 + k:
                    m = mm
            blend = np.zeros((3, 3))
            for j in range(16):
                blend += TW[k, j] * W[j]
            for i in range(1, 16):
                Ri = R[i]
                # dvec(R_i)/d axis-angle: column d = sum_c vec(R_i skew(e_c)) Jr[c, d]
                dfeat = np.zeros((9, 3))
                for c in range(3):
                    e = np.zeros(3)
                    e[c] = 1.0
                    Ke = np.array([[0.0, -e[2], e[1]], [e[2], 0.0, -e[0]], [-e[1], e[0], 0.0]])
                    M = (Ri @ Ke).reshape(9)
                    for f in range(9):
                        for d in range(3):
                            dfeat[f, d] += M[f] * Jr[i, c, d]
                drest = np.zeros((3, 3))
                for c in range(3):
                    for f in range(9):
                        for d in range(3):
                            drest[c, d] += TP[k, c, i - 1, f] * dfeat[f, d]
                blk = blend @ drest
                J3[b, m, :, 3 * i : 3 * i + 3] += blk
                J2[b, m, :, 3 * i : 3 * i + 3] += blk
        # shape: d origins / d betas down the chain, then the tips' blend
        dO = np.zeros((16, 3, S))
        dO[0] = JD[0]
        for j in range(1, 16):
            p = parents[j]
            dO[j] = dO[p] + W[p] @ (JD[j] - JD[p])
        for m in range(21):
            s_ = src[m]
            if s_ < 16:
                dB = dO[s_]
            else:
                k = s_ - 16
                dB = np.zeros((3, S))
                for j in range(16):
                    if TW[k, j] != 0.0:
                        dB += TW[k, j] * (W[j] @ (TD[k] - JD[j]) + dO[j])
            J3[b, m, :, 48 : 48 + S] = dB
            J2[b, m, :, 48 : 48 + S] = dB
            for c in range(3):
                J3[b, m, c, 48 + S + c] = 1.0
                J2[b, m, c, 48 + S + c] = 1.0


def _compile(impl):
    if njit is None:
        return impl
    try:
        return njit(cache=True, nogil=True)(impl)
    except RuntimeError:  # no writable cache folder ("no locator available"): compiled in each process
        return njit(nogil=True)(impl)


_kernel = _compile(_impl)
_announced = False


def _announce_compile() -> None:
    """Say once, before the first call, when the kernel is about to be compiled (~15 s; once per machine)."""
    global _announced
    if _announced or njit is None:
        return
    _announced = True
    try:
        cache = _kernel._cache
        cached = os.path.exists(os.path.join(cache._cache_path, cache._index_name))
    except Exception:  # numba's private layout changed, or no cache: say nothing
        return
    if not cached:
        logging.getLogger("handssca.fit").info(
            "compiling the landmark fit's kernel (numba, ~15 s, once: it is cached on this machine)"
        )


def disable() -> None:
    """Stop using the kernel in this process (it could not be compiled here)."""
    global njit
    njit = None
