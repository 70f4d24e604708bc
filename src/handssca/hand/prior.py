"""A pose prior with anatomical joint limits, for sampling plausible hand poses.

A hand with a prior stores, for each of the 15 finger joints in MANO order, an anatomical frame
(columns: twist axis = bone direction, flexion axis, abduction axis; in the rest-pose world frame,
where MANO's local rotations are expressed; see :func:`joint_frames`) and limits in radians for
(flexion, abduction, twist) (:func:`default_limits`). A local rotation is
``R = B Rz(abduction) Ry(flexion) Rx(twist) B^T`` with ``B`` the frame.

Conventions (right hand, MANO layout: wrist on +x, fingers toward -x, thumb on +z, palm toward -y):

- fingers: positive flexion curls toward the palm; positive abduction turns toward the thumb (radial);
- thumb: positive flexion brings it across the palm toward the pinky; positive abduction lifts it
  out of the palm (palmar abduction); positive CMC twist is pronation (the pad turns toward the fingers).

:func:`sample_anatomical_angles` draws angles with the couplings of real hands: a shared closure
(fingers curl together, ring and pinky most tightly), DIP flexion ~2/3 of PIP flexion, MCP
abduction that narrows as the MCP flexes, and a thumb that opposes along a path that first lifts it
out of the palm (palmar abduction), then swings it across (flexion) with pronation. Poses can be
checked for interpenetration on the mesh (:mod:`handssca.hand.collisions`) and redrawn
(:func:`sample_hand_pose` with ``collider=``, or :func:`handssca.hand.collisions.sample_plausible_poses`). For a MANO file
without frames and limits, poses are drawn from the file's own ``hands_coeffs`` plus noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from handssca.hand.joint_orders import MANO_PARENTS
from handssca.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

# Indices into the 15 finger joints (MANO joints 1-15) of each chain (MCP, PIP, DIP), thumb (CMC, MCP, IP)
FINGER_CHAINS = {"index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8), "ring": (9, 10, 11)}
THUMB_CHAIN = (12, 13, 14)
#: MANO joint (1-15) ending at each fingertip, in the tip order of ``tip_ids`` (thumb, index, middle, ring, pinky)
TIP_PARENT_JOINTS = (15, 3, 6, 12, 9)

_D = math.pi / 180
# Anatomical limits in degrees of (flexion, abduction, twist), measured from the anatomical zero: a straight
# finger in line with its metacarpal (flexion) and parallel to the hand's axis, the wrist-to-middle-MCP line
# (abduction, positive toward the thumb); a thumb whose metacarpal lies in the palm plane (palmar abduction
# 0) alongside the index metacarpal (CMC flexion 0; negative: radial abduction). Sources, rounded:
# - finger MCP flexion 90-100, PIP 100-110, DIP 80-90, active MCP hyperextension 20-30: AAOS normal
#   ranges (Greene & Heckman, "The Clinical Measurement of Joint Motion", 1994) and the active range of
#   motion of Hume et al. 1990 ("Functional range of motion of the joints of the hand", J Hand Surg 15A);
# - static bounds 0<=MCP<=90, 0<=PIP<=110, 0<=DIP<=90, -15<=MCP abduction<=15 and the coupling
#   DIP = 2/3 PIP: Lin, Wu & Huang 2000 ("Modeling the constraints of human hand motion", HUMO) after
#   Rijpkema & Girard 1991 and Lee & Kunii 1995; the middle finger abducts least, the pinky most
#   (ulnarward), the index radially;
# - MCP abduction narrows as the MCP flexes (the collateral ligaments tighten; Kapandji, "The Physiology
#   of the Joints" vol. 1), modelled linearly as in Cobos et al. 2008 ("Efficient human hand kinematics
#   for manipulation tasks", IROS): ``ABDUCTION_AT_FULL_FLEXION``;
# - thumb CMC palmar abduction 0-70 and radial abduction 0-50 (AAOS), axial pronation of the first
#   metacarpal in opposition up to ~30-40 (Cooney et al. 1981, "The kinesiology of the thumb
#   trapeziometacarpal joint", JBJS 63A); thumb MCP flexion 0-50/60 (AAOS; Hume 56), IP flexion 0-80
#   with 10-20 hyperextension (AAOS; Hume 73).
# Finger twist (axial rotation) is a few degrees of passive play; ring and pinky supinate slightly.
_FINGER_PHALANGES = {"pip": ((0, 105), (-2, 2), (-3, 3)), "dip": ((-5, 85), (-2, 2), (-3, 3))}
FINGER_LIMITS_DEG = {
    "index": {"mcp": ((-25, 90), (-10, 25), (-5, 5)), **_FINGER_PHALANGES},
    "middle": {"mcp": ((-25, 90), (-12, 12), (-5, 5)), **_FINGER_PHALANGES},
    "ring": {"mcp": ((-25, 95), (-20, 8), (-6, 6)), **_FINGER_PHALANGES},
    "pinky": {"mcp": ((-30, 95), (-35, 5), (-8, 8)), **_FINGER_PHALANGES},
}
THUMB_LIMITS_DEG = {
    "cmc": ((-50, 40), (-5, 70), (-10, 40)),
    "mcp": ((-10, 55), (-8, 8), (-6, 6)),
    "ip": ((-15, 80), (-3, 3), (-3, 3)),
}
#: The fraction of the MCP abduction range left at full MCP flexion (linear in between).
ABDUCTION_AT_FULL_FLEXION = 0.25
#: DIP flexion is drawn as this fraction of PIP flexion (Rijpkema & Girard 1991; Lin et al. 2000), +- the spread.
DIP_PIP_RATIO = (2.0 / 3.0, 0.1)
#: Sign of a thumb CMC twist that pronates (turns the pad toward the fingers) in the frames of :func:`joint_frames`.
PRONATION = 1.0


def anatomical_limits() -> np.ndarray:
    """(15, 3, 2) the table's limits in radians (measured from the anatomical zero, not from a rest pose)."""
    lim = np.zeros((15, 3, 2))
    for finger, chain in FINGER_CHAINS.items():
        for j, name in zip(chain, ("mcp", "pip", "dip")):
            lim[j] = np.array(FINGER_LIMITS_DEG[finger][name]) * _D
    for j, name in zip(THUMB_CHAIN, ("cmc", "mcp", "ip")):
        lim[j] = np.array(THUMB_LIMITS_DEG[name]) * _D
    return lim


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def palm_normal(joints16: np.ndarray) -> np.ndarray:
    """(3,) unit normal out of the palm of a right hand: (index MCP - wrist) x (pinky MCP - wrist)."""
    J = np.asarray(joints16, dtype=np.float64)
    return _unit(np.cross(J[1] - J[0], J[7] - J[0]))


def bone_directions(joints16: np.ndarray, tips: np.ndarray | None = None) -> np.ndarray:
    """(15, 3) unit direction of the bone leaving each finger joint (MANO joints 1-15).

    ``joints16`` (16, 3) rest joints in MANO order; ``tips`` (5, 3) fingertips (thumb, index, middle,
    ring, pinky) give the last bones' directions, else the previous bone's direction is continued.
    """
    J = np.asarray(joints16, dtype=np.float64)
    out = np.zeros((15, 3))
    ends = dict(zip(TIP_PARENT_JOINTS, np.asarray(tips, dtype=np.float64))) if tips is not None else {}
    for j in range(1, 16):
        if j in ends:
            nxt = ends[j]
        elif j + 1 < 16 and MANO_PARENTS[j + 1] == j:
            nxt = J[j + 1]
        else:
            nxt = J[j] + (J[j] - J[MANO_PARENTS[j]])
        out[j - 1] = _unit(nxt - J[j])
    return out


def joint_frames(joints16: np.ndarray, palm_normal: np.ndarray, tips: np.ndarray | None = None) -> np.ndarray:
    """(15, 3, 3) anatomical frames of MANO joints 1-15; columns (twist, flexion, abduction) axes.

    ``joints16`` (16, 3) rest joints of a right hand in MANO's layout and joint order; ``palm_normal``
    (3,) unit normal pointing out of the palm (about -y for MANO; :func:`palm_normal`); ``tips`` (5, 3)
    optional fingertips (thumb, index, middle, ring, pinky) for the last bones' directions. The frames are
    right-handed: twist t = the bone direction; for fingers the flexion axis is f = t x n (n: the palm
    normal made orthogonal to t), so a positive rotation about f turns t toward n (curls toward the palm)
    and a positive abduction (about a = t x f = -n) turns t toward f, the thumb side. For the thumb f = n:
    positive flexion turns t toward n x t, across the palm toward the pinky, and positive abduction
    (about a = t x f) turns t toward n, out of the palm (palmar abduction).
    """
    n = _unit(np.asarray(palm_normal, dtype=np.float64))
    d = bone_directions(joints16, tips)
    frames = np.zeros((15, 3, 3))
    for k in range(15):
        t = d[k]
        n_perp = _unit(n - (n @ t) * t)
        f = n_perp if k in THUMB_CHAIN else np.cross(t, n_perp)
        frames[k] = np.stack([t, f, np.cross(t, f)], axis=1)
    return frames


def _signed_angle(u: np.ndarray, v: np.ndarray, axis: np.ndarray) -> float:
    """The angle turning u to v about ``axis`` (unit), both projected onto the plane normal to it."""
    p, q = u - (u @ axis) * axis, v - (v @ axis) * axis
    return math.atan2(np.cross(p, q) @ axis, p @ q)


def rest_angles(
    joints16: np.ndarray, frames: np.ndarray, palm_normal: np.ndarray, tips: np.ndarray | None = None
) -> np.ndarray:
    """(15, 3) the rest pose's own anatomical angles (flexion, abduction, twist) in radians.

    Flexion: from the parent bone (the wrist-to-MCP line stands for a metacarpal) about the joint's
    flexion axis. Finger MCP abduction: from the hand's axis (wrist to middle MCP) toward the thumb. Thumb
    CMC: flexion is the angle in the palm plane from the index metacarpal to the thumb metacarpal (positive
    toward the pinky), abduction its elevation out of the palm plane. Twist is 0 (not measurable from
    joints). Pass it to :func:`default_limits` for a hand modelled with spread fingers or a lifted thumb.
    """
    J = np.asarray(joints16, dtype=np.float64)
    n = _unit(np.asarray(palm_normal, dtype=np.float64))
    d = bone_directions(J, tips)
    hand_axis = _unit(J[4] - J[0])
    out = np.zeros((15, 3))
    for k in range(15):
        j = k + 1
        prev = _unit(J[j] - J[MANO_PARENTS[j]])
        if k == THUMB_CHAIN[0]:
            out[k, 0] = _signed_angle(_unit(J[1] - J[0]), d[k], n)
            out[k, 1] = math.asin(np.clip(d[k] @ n, -1.0, 1.0))
            continue
        out[k, 0] = _signed_angle(prev, d[k], frames[k][:, 1])
        if MANO_PARENTS[j] == 0:
            out[k, 1] = _signed_angle(hand_axis, d[k], frames[k][:, 2])
    return out


def default_limits(rest: np.ndarray | None = None) -> np.ndarray:
    """(15, 3, 2) limits in radians of (flexion, abduction, twist) for the 15 finger joints in MANO order,
    relative to the rest pose (angle 0 = the rest pose).

    ``rest`` (15, 3) (or (15,) flexion only) radians: the rest pose's own anatomical angles
    (:func:`rest_angles`); the table's limits are shifted by it so that they stay anatomical for a hand
    modelled with curled or spread fingers or a lifted thumb. None: the rest pose is the anatomical zero.
    """
    lim = anatomical_limits()
    if rest is not None:
        r = np.asarray(rest, dtype=np.float64)
        r = np.stack([r, np.zeros(15), np.zeros(15)], 1) if r.ndim == 1 else r
        lim = lim - r[..., None]
    return lim


def _to_table(angles: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Angles within ``limits`` mapped affinely onto the table's ranges (anatomical terms)."""
    t = anatomical_limits()
    return t[..., 0] + (angles - limits[..., 0]) / (limits[..., 1] - limits[..., 0]) * (t[..., 1] - t[..., 0])


def _from_table(angles: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_to_table`."""
    t = anatomical_limits()
    return limits[..., 0] + (angles - t[..., 0]) / (t[..., 1] - t[..., 0]) * (limits[..., 1] - limits[..., 0])


def abduction_scale(mcp_flexion: np.ndarray, finger_mcp: int) -> np.ndarray:
    """The factor (same shape as ``mcp_flexion``, anatomical radians) on a finger MCP's abduction range."""
    hi = anatomical_limits()[finger_mcp, 0, 1]
    return 1.0 - (1.0 - ABDUCTION_AT_FULL_FLEXION) * np.clip(mcp_flexion / hi, 0.0, 1.0)


def effective_limits(angles: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """(n, 15, 3, 2) the limits for poses ``angles`` (n, 15, 3): ``limits`` (15, 3, 2) with each finger MCP's
    abduction range narrowed (about the anatomical zero) as that MCP flexes."""
    lim = np.broadcast_to(limits, (*angles.shape, 2)).copy()
    t = anatomical_limits()
    scale = (limits[..., 1] - limits[..., 0]) / (t[..., 1] - t[..., 0])
    anat = _to_table(angles, limits)
    for mcp, _, _ in FINGER_CHAINS.values():
        s = abduction_scale(anat[:, mcp, 0], mcp)[:, None]  # (n, 1)
        lim[:, mcp, 1, :] = limits[mcp, 1, 0] + (t[mcp, 1] * s - t[mcp, 1, 0]) * scale[mcp, 1]
    return lim


def within_limits(angles: np.ndarray, limits: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """(n,) whether each pose's angles (n, 15, 3) lie within ``limits`` (15, 3, 2) and the coupled
    MCP abduction range (:func:`effective_limits`)."""
    lim = effective_limits(angles, limits)
    return np.all((angles >= lim[..., 0] - tol) & (angles <= lim[..., 1] + tol), axis=(1, 2))


def thumb_opposition(o: np.ndarray) -> np.ndarray:
    """(n, 3) anatomical CMC (flexion, abduction, twist) in radians along the opposition path at ``o`` (n,).

    o = 0: the thumb relaxed beside the index (30 degrees radial, 10 out of the palm); o = 1: in front of
    the ring and pinky. The thumb first lifts out of the palm (palmar abduction reaches its top by o = 0.7)
    while it swings across (flexion from o = 0.1 on) and the metacarpal pronates, so it passes in front
    of the palm, never through it; on the way its tip meets the tips of half-flexed fingers in turn.
    """
    o = np.clip(np.asarray(o, dtype=np.float64), 0.0, 1.0)
    flex = -30 + 55 * np.clip((o - 0.1) / 0.9, 0, 1)
    abd = 10 + 50 * np.clip(o / 0.7, 0, 1)
    twist = PRONATION * 30 * o
    return np.stack([flex, abd, twist], -1) * _D


def sample_anatomical_angles(n: int, limits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 15, 3) angles (flexion, abduction, twist) in radians within ``limits`` (15, 3, 2).

    Draws anatomical angles in the terms of the table (:func:`anatomical_limits`) and maps each degree
    of freedom affinely onto ``limits`` (the identity for the table itself; a shift for
    :func:`default_limits` of a rest pose). Every draw satisfies :func:`within_limits`.
    """
    t = anatomical_limits()
    lo, hi = t[..., 0], t[..., 1]
    ang = np.zeros((n, 15, 3))
    closure = rng.beta(1.1, 1.3, size=n)  # 0 open hand .. 1 fist, shared by all fingers
    spread = rng.uniform(-0.15, 1.0, size=n)  # fingers together (<0: pressed) .. spread
    # how each finger shares its closure between the MCP (w=1: flat grip) and the PIP/DIP (w=0: hook)
    style = rng.beta(2.0, 2.0, size=n)
    # enslaving: neighbours move together, ring and pinky most of all (Hager-Ross & Schieber 2000)
    z = {k: rng.normal(0, 1, n) for k in ("index", "middle", "ring", "pinky")}
    per_finger = {
        "index": closure + 0.22 * z["index"],
        "middle": closure + 0.12 * z["middle"] + 0.05 * z["index"],
        "ring": closure + 0.08 * z["middle"] + 0.08 * z["ring"],
        "pinky": closure + 0.08 * z["middle"] + 0.08 * z["ring"] + 0.06 * z["pinky"],
    }
    side = {"index": 0.8, "middle": 0.1, "ring": -0.6, "pinky": -0.9}  # abduction direction and share
    for k, (mcp, pip, dip) in FINGER_CHAINS.items():
        c = np.clip(per_finger[k], 0, 1)
        w = np.clip(style + rng.normal(0, 0.1, n), 0, 1)
        mcp_frac = np.clip(c * (0.35 + 1.1 * w) + rng.normal(0, 0.04, n), 0, 1)
        pip_frac = np.clip(c * (1.45 - 1.1 * w) + rng.normal(0, 0.04, n), 0, 1)
        ext = rng.uniform(0, 0.5, n) * (1 - mcp_frac) ** 3  # a little hyperextension of open fingers
        ang[:, mcp, 0] = mcp_frac * hi[mcp, 0] + ext * lo[mcp, 0]
        ang[:, pip, 0] = pip_frac * hi[pip, 0]
        ratio = DIP_PIP_RATIO[0] + DIP_PIP_RATIO[1] * rng.uniform(-1, 1, n)
        ang[:, dip, 0] = ratio * ang[:, pip, 0] + rng.normal(0, 2 * _D, n)
        s = side[k] * spread
        a = np.where(s >= 0, s * hi[mcp, 1], -s * lo[mcp, 1]) + rng.normal(0, 3 * _D, n)
        ang[:, mcp, 1] = np.clip(a, lo[mcp, 1], hi[mcp, 1]) * abduction_scale(ang[:, mcp, 0], mcp)
        for j in (mcp, pip, dip):  # small axial play; ring and pinky supinate (negative) as they flex
            ang[:, j, 2] = rng.normal(0, 0.3, n) * hi[j, 2]
        if k in ("ring", "pinky"):
            ang[:, mcp, 2] -= 0.5 * c * hi[mcp, 2]
        for j in (pip, dip):
            ang[:, j, 1] = rng.normal(0, 0.3, n) * hi[j, 1]
    cmc, tmcp, ip = THUMB_CHAIN
    o = np.clip(0.7 * closure + rng.uniform(-0.3, 0.5, n), 0, 1)  # opposition progress
    ang[:, cmc] = thumb_opposition(o)
    ang[:, cmc, 0] += rng.normal(0, 6 * _D, n) - rng.uniform(0, 15 * _D, n) * (o < 0.05)  # some radial abduction
    ang[:, cmc, 1] += rng.normal(0, 6 * _D, n)
    ang[:, cmc, 2] += rng.normal(0, 5 * _D, n)
    curl = np.clip(0.5 * closure + 0.3 * o + rng.normal(0, 0.2, n), 0, 1)  # thumb MCP/IP curl
    ang[:, tmcp, 0] = lo[tmcp, 0] * rng.uniform(0, 0.5, n) * (1 - curl) + curl * hi[tmcp, 0] * rng.uniform(0.3, 1, n)
    ang[:, ip, 0] = lo[ip, 0] * rng.uniform(0, 0.6, n) * (1 - curl) + curl * hi[ip, 0] * rng.uniform(0.3, 1, n)
    for j in (tmcp, ip):
        ang[:, j, 1:] = rng.normal(0, 0.3, (n, 2)) * hi[j, 1:]
    ang = np.clip(ang, lo, hi)
    return _from_table(ang, limits)


def angles_to_matrices(angles: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Anatomical angles (..., 15, 3) -> local rotation matrices (..., 15, 3, 3) with frames ``axes`` (15, 3, 3).

    R = B Rz(abduction) Ry(flexion) Rx(twist) B^T where B's columns are the (twist, flexion, abduction) axes.
    """
    a = np.asarray(angles, dtype=np.float64)
    cf, sf = np.cos(a[..., 0]), np.sin(a[..., 0])
    ca, sa = np.cos(a[..., 1]), np.sin(a[..., 1])
    ct, st = np.cos(a[..., 2]), np.sin(a[..., 2])
    # Rz(a) Ry(f) Rx(t) written out
    M = np.stack(
        [
            np.stack([ca * cf, ca * sf * st - sa * ct, ca * sf * ct + sa * st], -1),
            np.stack([sa * cf, sa * sf * st + ca * ct, sa * sf * ct - ca * st], -1),
            np.stack([-sf, cf * st, cf * ct], -1),
        ],
        -2,
    )
    B = np.asarray(axes, dtype=np.float64)
    return B @ M @ np.swapaxes(B, -1, -2)


def matrices_to_angles(R: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Local rotations (..., 15, 3, 3) -> anatomical angles (..., 15, 3) (flexion, abduction, twist): Z-Y-X
    Euler angles in the frames, the inverse of :func:`angles_to_matrices`. Of the two solutions the one with
    the smaller abduction and twist is taken (so flexion beyond 90 degrees is recovered); at exactly +-90
    degrees of flexion the twist is reported as 0."""
    B = np.asarray(axes, dtype=np.float64)
    M = np.swapaxes(B, -1, -2) @ np.asarray(R, dtype=np.float64) @ B
    flex = np.arctan2(-M[..., 2, 0], np.hypot(M[..., 0, 0], M[..., 1, 0]))  # precise near 90 degrees
    abd = np.arctan2(M[..., 1, 0], M[..., 0, 0])
    twist = np.arctan2(M[..., 2, 1], M[..., 2, 2])
    flex2 = np.where(flex >= 0, np.pi - flex, -np.pi - flex)
    abd2 = np.arctan2(-M[..., 1, 0], -M[..., 0, 0])
    twist2 = np.arctan2(-M[..., 2, 1], -M[..., 2, 2])
    second = np.abs(abd2) + np.abs(twist2) < np.abs(abd) + np.abs(twist)
    flex, abd, twist = np.where(second, flex2, flex), np.where(second, abd2, abd), np.where(second, twist2, twist)
    # flexion of +-90 degrees (gimbal lock): only abduction -+ twist is defined; all of it goes to abduction
    lock = np.abs(M[..., 0, 0]) + np.abs(M[..., 1, 0]) < 1e-7
    abd = np.where(lock, np.arctan2(-M[..., 0, 1], M[..., 1, 1]), abd)
    return np.stack([flex, abd, np.where(lock, 0.0, twist)], -1)


def angles_to_axis_angle(angles: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Anatomical angles (n, 15, 3) -> MANO axis-angle (n, 45) with frames ``axes`` (15, 3, 3)."""
    return _axis_angle(angles_to_matrices(angles, axes)).reshape(len(angles), 45)


def _axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> axis-angle (..., 3) in numpy (faster than torch for a few joints);
    rotations by up to ~179 degrees (the prior's joints stay far below; near pi it falls back to torch)."""
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.linalg.norm(v, axis=-1) / 2  # sin(theta)
    c = (np.trace(R, axis1=-2, axis2=-1) - 1) / 2  # cos(theta)
    if np.any(c < -0.999):
        return matrix_to_axis_angle(torch.as_tensor(R)).numpy()
    theta = np.arctan2(s, c)
    f = np.where(s > 1e-8, theta / np.maximum(2 * s, 1e-300), 0.5 + theta**2 / 12)
    return v * f[..., None]


def sample_hand_pose(
    n: int,
    rng: np.random.Generator,
    axes: np.ndarray | None,
    limits: np.ndarray | None,
    hands_coeffs: np.ndarray | None = None,
    hands_components: np.ndarray | None = None,
    hands_mean: np.ndarray | None = None,
    collider=None,
    max_depth: float | None = None,
) -> np.ndarray:
    """(n, 45) full finger poses (axis-angle, MANO order, mean included) from the prior.

    Uses the anatomical frames and limits when given (the default hand), else the model's own
    ``hands_coeffs`` (official MANO files) with a little noise. With ``collider`` (a
    :class:`~handssca.hand.collisions.HandCollider` of the same hand), draws whose interpenetration
    exceeds ``max_depth`` metres (default: the collider's threshold) are redrawn.
    """
    if axes is not None and limits is not None:

        def draw(k: int) -> np.ndarray:
            return angles_to_matrices(sample_anatomical_angles(k, limits, rng), axes)

    elif hands_coeffs is None or hands_components is None or hands_mean is None:
        raise ValueError("this hand model has no pose prior: neither anatomical axes/limits nor hands_coeffs")
    else:

        def coeff_poses(k: int) -> np.ndarray:
            idx = rng.integers(0, len(hands_coeffs), k)
            coeffs = hands_coeffs[idx] + rng.normal(0, 0.1, (k, hands_coeffs.shape[1])) * hands_coeffs.std(0)
            return coeffs @ hands_components[: coeffs.shape[1]] + hands_mean

        if collider is None:
            return coeff_poses(n)

        def draw(k: int) -> np.ndarray:
            return axis_angle_to_matrix(torch.as_tensor(coeff_poses(k)).reshape(k, 15, 3)).numpy()

    R = draw(n) if collider is None else collider.rejection_sample(draw, n, max_depth)
    return _axis_angle(R).reshape(n, 45)
