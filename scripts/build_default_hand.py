"""Build the license-free default hand: src/handssca/assets/default_hand_right.npz.

A procedural right hand in MANO's layout and conventions (metres; fingers toward -x, thumb on +z,
palm facing -y; MANO's 16-joint tree and joint order), designed from anthropometric proportions
(no MANO data is used). Every part is a swept tube of elliptic rings: an open-ended palm with a
thenar pad, and five digits whose rings sit exactly on the joints, so that the joint regressor
(the mean of each joint's ring) returns the designed joints. Skinning weights blend smoothly across
each joint along its digit. Ten shape modes are central differences of the generator's anatomical
parameters (scale, finger length, thickness, palm width/length/thickness, thumb length, spread,
index/ring ratio, pinky length). Pose correctives are zero (plain LBS). The pose PCA, mean and the
pose sample come from the anatomical prior in ``handssca.hand.prior``.

    python scripts/build_default_hand.py [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from handssca.hand.prior import angles_to_axis_angle, default_limits, sample_anatomical_angles

RING = 12  # vertices per digit ring
PALM_RING = 28
# MANO joint ids (MCP, PIP, DIP) per finger, thumb (CMC, MCP, IP)
CHAINS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12), "thumb": (13, 14, 15)}
TIP_ORDER = ("thumb", "index", "middle", "ring", "pinky")
PARAMS = (
    "scale",
    "finger_length",
    "thickness",
    "palm_width",
    "palm_length",
    "thumb_length",
    "spread",
    "palm_thickness",
    "index_ring_ratio",
    "pinky_length",
)
SIGMA = np.array([0.05, 0.06, 0.08, 0.06, 0.06, 0.08, 0.05, 0.10, 0.04, 0.07])

WRIST = np.array([0.090, 0.0, 0.0])


def _normalize(v):
    return v / np.linalg.norm(v)


def skeleton(p: dict[str, float]) -> dict[str, np.ndarray]:
    """Joint polylines per digit: base (inside the palm), 3 joints, tip end; plus radii."""
    pl, pw = 1 + p["palm_length"], 1 + p["palm_width"]
    fl = 1 + p["finger_length"]
    spread = p["spread"]
    fingers = {
        # MCP position (x, z), direction fan angle (rad), phalanx lengths, base radius
        "index": ((0.000, 0.025), 0.09, (0.041, 0.024, 0.022), 0.0093, 1 + p["index_ring_ratio"]),
        "middle": ((-0.005, 0.004), 0.0, (0.045, 0.028, 0.023), 0.0096, 1.0),
        "ring": ((-0.001, -0.016), -0.08, (0.042, 0.027, 0.022), 0.0090, 1 - p["index_ring_ratio"]),
        "pinky": ((0.010, -0.034), -0.20, (0.033, 0.020, 0.020), 0.0080, 1 + p["pinky_length"]),
    }
    out = {}
    for name, ((x, z), fan, lengths, radius, extra) in fingers.items():
        mcp = WRIST + np.array([(x - WRIST[0]) * pl, 0.0, z * pw])
        ang = fan * (1 + spread * 4)
        d = np.array([-np.cos(ang), 0.0, np.sin(ang)])
        droop = np.array([0.0, -0.06, 0.0])  # slight natural palmar curve
        pts = [mcp + 0.030 * np.array([1.0, 0.0, -0.3 * np.sin(ang)]), mcp]
        for k, length in enumerate(lengths):
            d = _normalize(d + droop * (k + 1))
            pts.append(pts[-1] + d * length * fl * extra)
        out[name] = (np.array(pts), radius)
    tl = 1 + p["thumb_length"]
    cmc = WRIST + np.array([-0.020 * pl, -0.010, 0.022 * pw])
    dirs = [
        _normalize(np.array([-0.62, -0.40, 0.68])),
        _normalize(np.array([-0.80, -0.35, 0.50])),
        _normalize(np.array([-0.90, -0.30, 0.32])),
    ]
    pts = [cmc + np.array([0.018, 0.004, -0.012]), cmc]
    for d, length in zip(dirs, (0.046, 0.032, 0.030)):
        pts.append(pts[-1] + d * length * tl)
    out["thumb"] = (np.array(pts), 0.0120)
    return out


def _frame(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ring axes perpendicular to tangent t: u toward palmar (-y) side, w = t x u."""
    up = np.array([0.0, -1.0, 0.0])
    u = _normalize(up - t * (up @ t))
    return u, np.cross(t, u)


def digit_tube(pts: np.ndarray, radius: float, thickness: float, tip_len: float):
    """Rings along base -> MCP -> PIP -> DIP -> tip with a rounded cap; returns verts, faces, info."""
    seg_fracs = [(0.0, 0.5), (0.0, 0.34, 0.67), (0.0, 0.5), (0.0, 0.5, 0.85)]
    centers, tangents, radii, arcs, joint_ring = [], [], [], [], {}
    arc = 0.0
    total = sum(np.linalg.norm(pts[i + 1] - pts[i]) for i in range(1, 4))
    for s in range(4):
        a, b = pts[s], pts[s + 1]
        seg = np.linalg.norm(b - a)
        t = (b - a) / seg
        for f in seg_fracs[s]:
            if f == 0.0 and s >= 1:
                joint_ring[s] = len(centers)  # s = 1 MCP, 2 PIP, 3 DIP
            c = a + f * (b - a)
            along = max(0.0, arc + f * seg - np.linalg.norm(pts[1] - pts[0]))
            taper = 1.0 - 0.22 * min(1.0, along / total)
            knuckle = 1.06 if f == 0.0 and s >= 1 else 1.0
            centers.append(c)
            tangents.append(t)
            radii.append(radius * taper * knuckle * thickness)
            arcs.append(arc + f * seg)
        arc += seg
    tip = pts[4]
    t_end = tangents[-1]
    r_end = radii[-1] * 0.97
    for phi in (0.0, 0.45, 0.85, 1.2):  # rounded cap
        centers.append(tip + t_end * r_end * np.sin(phi) * 0.9)
        tangents.append(t_end)
        radii.append(r_end * np.cos(phi))
        arcs.append(arc + r_end * np.sin(phi) * 0.9)
    verts, ring_arc = [], []
    theta = np.linspace(0, 2 * np.pi, RING, endpoint=False)
    for c, t, r, s in zip(centers, tangents, radii, arcs):
        u, w = _frame(t)
        pad = 1.0 + 0.12 * np.clip(np.cos(theta), 0, None)  # palmar pads are a little fuller
        ring = c + (np.outer(np.cos(theta) * r * 0.88 * pad, u) + np.outer(np.sin(theta) * r, w))
        verts.append(ring)
        ring_arc.extend([s] * RING)
    verts = np.concatenate(verts)
    apex = tip + t_end * r_end * 1.0
    verts = np.vstack([verts, apex])
    ring_arc.append(arcs[-1] + r_end * 0.1)
    nr = len(centers)
    faces = []
    for i in range(nr - 1):
        for k in range(RING):
            a0, a1 = i * RING + k, i * RING + (k + 1) % RING
            b0, b1 = a0 + RING, a1 + RING
            faces += [(a0, b0, a1), (a1, b0, b1)]
    apex_id = nr * RING
    for k in range(RING):
        faces.append(((nr - 1) * RING + k, apex_id, (nr - 1) * RING + (k + 1) % RING))
    for k in range(1, RING - 1):  # close the base
        faces.append((0, (k + 1), k))
    joint_arcs = [np.sum([np.linalg.norm(pts[i + 1] - pts[i]) for i in range(s)]) for s in (1, 2, 3)]
    return verts, np.array(faces), np.array(ring_arc), joint_ring, joint_arcs, apex_id


def palm(p: dict[str, float]):
    """An elliptic, slightly tapered palm tube from the wrist to the knuckles, closed at both ends."""
    pl, pw, pt = 1 + p["palm_length"], 1 + p["palm_width"], 1 + p["palm_thickness"]
    xs = np.linspace(WRIST[0] + 0.012, WRIST[0] - 0.094 * pl, 11)
    rings, centers = [], []
    theta = np.linspace(0, 2 * np.pi, PALM_RING, endpoint=False)
    for i, x in enumerate(xs):
        f = i / (len(xs) - 1)
        half_w = (0.028 + 0.018 * np.sin(min(1.0, f * 1.4) * np.pi / 2)) * pw
        half_t = (0.013 + 0.004 * np.sin(f * np.pi)) * pt
        if f > 0.85:  # round off toward the knuckles
            k = (f - 0.85) / 0.15
            half_t *= 1 - 0.35 * k**2
            half_w *= 1 - 0.06 * k**2
        zc = 0.004 * f * pw
        c = np.array([x, 0.0, zc])
        cy, sy = np.cos(theta), np.sin(theta)
        # superellipse for a flatter back and palm
        y = np.sign(cy) * np.abs(cy) ** 0.7 * half_t
        z = np.sign(sy) * np.abs(sy) ** 0.8 * half_w
        thenar = 0.006 * np.exp(-((theta - 0.6) ** 2) / 0.2) * np.sin(np.clip(f * 1.6, 0, np.pi))
        y = y - thenar * 0.6
        z = z + thenar
        rings.append(c + np.stack([np.zeros_like(y), -y, z], 1))
        centers.append(c)
    verts = np.concatenate(rings)
    n = len(xs)
    faces = []
    for i in range(n - 1):
        for k in range(PALM_RING):
            a0, a1 = i * PALM_RING + k, i * PALM_RING + (k + 1) % PALM_RING
            b0, b1 = a0 + PALM_RING, a1 + PALM_RING
            faces += [(a0, a1, b0), (a1, b1, b0)]
    caps = []
    for ring_id, sign in ((0, 1), (n - 1, -1)):
        cap_c = centers[ring_id] + np.array([0.004 * sign, 0, 0])
        cid = len(verts) + len(caps)
        caps.append(cap_c)
        for k in range(PALM_RING):
            a0, a1 = ring_id * PALM_RING + k, ring_id * PALM_RING + (k + 1) % PALM_RING
            faces.append((a0, cid, a1) if sign > 0 else (a1, cid, a0))
    verts = np.vstack([verts, np.array(caps)])
    wrist_ring = np.arange(PALM_RING, 2 * PALM_RING)  # second ring sits on the wrist joint
    return verts, np.array(faces), wrist_ring, xs


def _outward(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Wind a closed part's triangles so that its signed volume is positive (normals point out)."""
    v = verts[faces]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    return faces if volume > 0 else faces[:, [0, 2, 1]]


def build_mesh(p: dict[str, float]):
    """Vertices, faces, joint-regressor rings, skinning weights and tip ids for parameters p."""
    p = dict(p)
    pv, pf, wrist_ring, _ = palm(p)
    parts_v, parts_f = [pv], [_outward(pv, pf)]
    nv = len(pv)
    weights_rows = [np.tile(np.eye(16)[0], (len(pv), 1))]
    regress: dict[int, np.ndarray] = {0: wrist_ring}
    tips = {}
    for name, (pts, radius) in skeleton(p).items():
        tip_len = 0.0
        v, f, arcs, joint_ring, joint_arcs, apex = digit_tube(pts, radius, 1 + p["thickness"], tip_len)
        chain = CHAINS[name]
        w = np.zeros((len(v), 16))
        blend = 0.0045
        prev = np.ones(len(v))
        levels = []
        for s_j in joint_arcs:
            levels.append(np.clip(0.5 + (arcs - s_j) / (2 * blend), 0, 1) ** 1)
        smooth = [s * s * (3 - 2 * s) for s in levels]
        w[:, 0] = 1 - smooth[0]
        w[:, chain[0]] = smooth[0] - smooth[1]
        w[:, chain[1]] = smooth[1] - smooth[2]
        w[:, chain[2]] = smooth[2]
        del prev
        for k, j in enumerate(chain):
            ring = joint_ring[k + 1]
            regress[j] = nv + np.arange(ring * RING, (ring + 1) * RING)
        tips[name] = nv + apex
        parts_v.append(v)
        parts_f.append(_outward(v, f) + nv)
        weights_rows.append(w)
        nv += len(v)
    verts = np.concatenate(parts_v)
    s = 1 + p["scale"]
    verts = WRIST + (verts - WRIST) * s
    return verts, np.concatenate(parts_f), regress, np.concatenate(weights_rows), [tips[k] for k in TIP_ORDER]


def joint_axes(joints: np.ndarray) -> np.ndarray:
    """(15, 3, 3) anatomical frames (twist, flexion, abduction axes as columns) of the finger joints."""
    parents = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    child = {}
    for j, par in enumerate(parents):
        if par >= 0:
            child.setdefault(par, j)
    axes = np.zeros((15, 3, 3))
    for j in range(1, 16):
        nxt = joints[child[j]] if j in child else joints[j] + (joints[j] - joints[parents[j]])
        d = _normalize(nxt - joints[j])
        palmar = np.array([0.0, -1.0, 0.0]) if j < 13 else _normalize(np.array([0.0, -0.5, -1.0]))
        flex = _normalize(np.cross(d, palmar))
        abd = np.cross(d, flex)
        axes[j - 1] = np.stack([d, flex, abd], axis=1)
    return axes


def build(seed: int = 0) -> dict[str, np.ndarray]:
    base = {k: 0.0 for k in PARAMS}
    verts, faces, regress, weights, tips = build_mesh(base)
    nv = len(verts)
    J = np.zeros((16, nv))
    for j, ids in regress.items():
        J[j, ids] = 1.0 / len(ids)
    shapedirs = np.zeros((nv, 3, 10))
    for k, name in enumerate(PARAMS):
        plus = build_mesh({**base, name: SIGMA[k]})[0]
        minus = build_mesh({**base, name: -SIGMA[k]})[0]
        shapedirs[:, :, k] = (plus - minus) / 2
    joints = J @ verts
    axes = joint_axes(joints)
    limits = default_limits()
    rng = np.random.default_rng(seed)
    poses = angles_to_axis_angle(sample_anatomical_angles(20000, limits, rng), axes)
    mean = poses.mean(0)
    _, _, vt = np.linalg.svd(poses - mean, full_matrices=True)
    coeffs = (poses[:1000] - mean) @ vt.T
    kintree = np.stack([np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]), np.arange(16)])
    return {
        "v_template": verts.astype(np.float64),
        "f": faces.astype(np.int32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((nv, 3, 135), dtype=np.float32),
        "J_regressor": J.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree.astype(np.int64),
        "hands_components": vt.astype(np.float32),
        "hands_mean": mean.astype(np.float64),
        "hands_coeffs": coeffs.astype(np.float32),
        "tip_ids": np.array(tips, dtype=np.int64),
        "prior_axes": axes.astype(np.float64),
        "prior_limits": limits.astype(np.float64),
        "shape_names": np.array(PARAMS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "src/handssca/assets/default_hand_right.npz")
    )
    args = parser.parse_args()
    arrays = build()
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out}: {len(arrays['v_template'])} vertices, {len(arrays['f'])} faces, "
        f"{Path(args.out).stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
