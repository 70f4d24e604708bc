"""Interpenetration of a posed hand mesh: how deep vertices of one part lie inside another part.

Each vertex belongs to its dominant skinning joint (a *part*: the palm, or one phalanx). Each part is
approximated by capsules fitted to its rest vertices (one per phalanx, one per metacarpal for the
palm), lying inside the skin. For a pose, the vertices are skinned (linear blend skinning with the
model's weights, no pose correctives) and each capsule follows its joint; the depth of a vertex inside
a capsule of a part that is neither its own nor adjacent in the kinematic tree, beyond what the rest
pose already has (fingers that touch at rest), is the penetration. All of it is vectorised numpy over
the poses; one pose costs well under a millisecond on the default hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from handssca.hand.prior import MANO_PARENTS, bone_directions, sample_hand_pose

log = logging.getLogger("handssca.hand")

#: Penetration (metres) above which a drawn pose is rejected: a few mm, what soft tissue absorbs at a contact.
DEFAULT_MAX_DEPTH = 0.004
_FINGER_MCPS = (1, 4, 7, 10)  # MANO joints of the index, middle, pinky, ring MCPs (the metacarpals' heads)


def point_segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (..., P, C) from points (..., P, 3) to segments a -> b (..., C, 3) (broadcast over ...)."""
    ab = b - a
    L2 = np.maximum((ab * ab).sum(-1), 1e-12)[..., None, :]  # (..., 1, C)
    pa = points @ np.swapaxes(a, -1, -2)  # (..., P, C) p . a
    pab = points @ np.swapaxes(ab, -1, -2)  # p . ab
    aab = (a * ab).sum(-1)[..., None, :]
    aa = (a * a).sum(-1)[..., None, :]
    pp = (points * points).sum(-1)[..., :, None]
    u_ab = pab - aab  # (p - a) . ab
    s = np.clip(u_ab / L2, 0.0, 1.0)
    d2 = pp - 2 * pa + aa - 2 * s * u_ab + s * s * L2
    return np.sqrt(np.maximum(d2, 0.0))


def capsule_depth(points: np.ndarray, a: np.ndarray, b: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """(..., P, C) how deep each point lies inside each capsule (radius minus distance to the axis segment;
    negative outside)."""
    return radius - point_segment_distance(points, a, b)


def fit_capsule(
    points: np.ndarray, direction: np.ndarray, quantile: float = 0.5
) -> tuple[np.ndarray, np.ndarray, float]:
    """A capsule (a, b, radius) along ``direction`` (3,) through the centroid of ``points`` (P, 3): the
    radius is the ``quantile`` of the points' distances to that line (the median keeps it inside the
    skin), the segment spans the points' extent along the line less one radius at each end."""
    d = direction / np.linalg.norm(direction)
    c = points.mean(0)
    t = (points - c) @ d
    rho = np.linalg.norm((points - c) - t[:, None] * d, axis=1)
    r = float(np.quantile(rho, quantile))
    t0, t1 = t.min() + r, t.max() - r
    if t1 < t0:
        t0 = t1 = (t.min() + t.max()) / 2
    return c + t0 * d, c + t1 * d, r


def farthest_points(points: np.ndarray, k: int) -> np.ndarray:
    """(k,) ids of an even subset of ``points`` (P, 3): greedy farthest-point sampling from point 0."""
    ids = np.zeros(k, dtype=np.int64)
    dist = np.linalg.norm(points - points[0], axis=1)
    for i in range(1, k):
        ids[i] = int(dist.argmax())
        dist = np.minimum(dist, np.linalg.norm(points - points[ids[i]], axis=1))
    return np.sort(ids)


def forward_kinematics(
    local: np.ndarray, joints16: np.ndarray, parents: Sequence[int] = MANO_PARENTS
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (n, 16, 3, 3) and positions (n, 16, 3) of the joints for local rotations (n, 15, 3, 3)
    of MANO joints 1-15 (the root stays fixed at its rest place)."""
    n = local.shape[0]
    R = np.empty((n, 16, 3, 3))
    P = np.empty((n, 16, 3))
    R[:, 0] = np.eye(3)
    P[:, 0] = joints16[0]
    for j in range(1, 16):
        p = parents[j]
        R[:, j] = R[:, p] @ local[:, j - 1]
        P[:, j] = P[:, p] + R[:, p] @ (joints16[j] - joints16[p])
    return R, P


class HandCollider:
    """Capsules fitted to a hand mesh's parts, and the interpenetration of posed meshes.

    ``vertices`` (V, 3) rest mesh, ``weights`` (V, 16) skinning weights, ``joints16`` (16, 3) rest joints
    (MANO order and tree), ``tips`` (5, 3) optional fingertips (thumb, index, middle, ring, pinky) for the
    last phalanges' direction. ``max_depth`` metres: the default rejection threshold. ``max_vertices``:
    the capsules are fitted to all vertices, but only an even subset of this many is tested (speed).
    """

    def __init__(
        self,
        vertices: np.ndarray,
        weights: np.ndarray,
        joints16: np.ndarray,
        parents: Sequence[int] = MANO_PARENTS,
        tips: np.ndarray | None = None,
        max_depth: float = DEFAULT_MAX_DEPTH,
        max_vertices: int | None = 768,
    ) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        if max_vertices is not None and len(v) > max_vertices:  # capsules are fitted to all vertices, below
            keep = farthest_points(v, max_vertices)
        else:
            keep = np.arange(len(v))
        J = np.asarray(joints16, dtype=np.float64)
        self.parents = [int(p) for p in parents]
        if list(self.parents) != list(MANO_PARENTS):
            raise ValueError(f"parents: expected MANO's 16-joint tree {list(MANO_PARENTS)}; got {self.parents}")
        self.vertices, self.weights, self.joints16, self.max_depth = v, w, J, float(max_depth)
        self.part = w.argmax(1)
        d = bone_directions(J, tips)
        caps_a, caps_b, caps_r, caps_part = [], [], [], []
        # palm: one capsule per metacarpal, from the palm vertices nearest to the wrist-to-MCP line
        # (radius at most the palm's half thickness, so that it stays inside the palm's flat sides)
        pv = v[self.part == 0]
        if len(pv) >= 16:
            normal = np.linalg.svd(pv - pv.mean(0), full_matrices=False)[2][2]  # the palm's thin direction
            dist = np.stack([self._line_distance(pv, J[0], J[m]) for m in _FINGER_MCPS], 1)
            nearest = dist.argmin(1)
            for k, m in enumerate(_FINGER_MCPS):
                pts = pv[nearest == k]
                if len(pts) >= 4:
                    a, b, r = fit_capsule(pts, J[m] - J[0])
                    half = float(np.quantile(np.abs((pts - pts.mean(0)) @ normal), 0.7))
                    caps_a.append(a), caps_b.append(b), caps_r.append(min(r, half)), caps_part.append(0)
        for j in range(1, 16):
            pts = v[self.part == j]
            if len(pts) >= 4:
                a, b, r = fit_capsule(pts, d[j - 1])
                caps_a.append(a), caps_b.append(b), caps_r.append(r), caps_part.append(j)
        self.cap_a, self.cap_b = np.array(caps_a), np.array(caps_b)
        self.cap_radius, self.cap_part = np.array(caps_r), np.array(caps_part)
        # the tested vertices: an even subset (farthest points; ~4 mm apart on the default hand)
        self.vertex_ids = keep
        v, w, self.part = v[keep], w[keep], self.part[keep]
        self.vertices, self.weights = v, w
        # a vertex is tested against capsules of parts that are neither its own nor a parent/child of it
        p, q = self.part[:, None], self.cap_part[None, :]
        par = np.array(self.parents)
        adjacent = (p == q) | (par[p] == q) | (par[q] == p)
        # per pair, the depth the rest pose already has is allowed (neighbouring fingers touch at rest)
        rest = capsule_depth(v, self.cap_a, self.cap_b, self.cap_radius)
        self.allow = np.where(adjacent, np.inf, np.maximum(rest, 0.0))
        self._cap_a_local = self.cap_a - J[self.cap_part]
        self._cap_b_local = self.cap_b - J[self.cap_part]
        self._vh = np.concatenate([v, np.ones((len(v), 1))], 1)
        self._vh32, self._w32 = self._vh.astype(np.float32), w.astype(np.float32)
        self._margin32 = (self.cap_radius[None] - self.allow).astype(np.float32)  # (V, C), -inf where adjacent
        self._warned = False

    @staticmethod
    def _line_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return point_segment_distance(points, a[None], b[None])[:, 0]

    @classmethod
    def from_model(cls, model, max_depth: float = DEFAULT_MAX_DEPTH, max_vertices: int | None = 768) -> HandCollider:
        """From a :class:`~handssca.hand.HandModel` (its mean shape)."""
        v = model.v_template.double().cpu().numpy()
        J = model.J_regressor.double().cpu().numpy() @ v
        tips = v[model.tip_ids.cpu().numpy()]
        return cls(v, model.lbs_weights.double().cpu().numpy(), J, model.parents, tips, max_depth, max_vertices)

    @property
    def num_capsules(self) -> int:
        return len(self.cap_radius)

    def _transforms(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-joint skinning matrices (n, 16, 12) and capsule ends a, b (n, C, 3) for local rotations."""
        R, P = forward_kinematics(np.asarray(local, dtype=np.float64), self.joints16, self.parents)
        t = P - np.einsum("njab,jb->nja", R, self.joints16)
        A = np.concatenate([R, t[..., None]], -1).reshape(len(R), 16, 12)
        Rc, Pc = R[:, self.cap_part], P[:, self.cap_part]
        a = np.einsum("ncab,cb->nca", Rc, self._cap_a_local) + Pc
        b = np.einsum("ncab,cb->nca", Rc, self._cap_b_local) + Pc
        return A, a, b

    def posed(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Skinned vertices (n, V, 3) and capsule ends a, b (n, C, 3) for local rotations (n, 15, 3, 3)."""
        A, a, b = self._transforms(local)
        T = (self.weights @ A).reshape(len(A), -1, 3, 4)  # blended per vertex
        return (T * self._vh[None, :, None, :]).sum(-1), a, b

    def depths(self, local: np.ndarray) -> np.ndarray:
        """(n, V, C) penetration (metres, >= 0) of each vertex into each capsule beyond its rest depth (0 for
        its own and adjacent parts)."""
        X, a, b = self.posed(local)
        return np.maximum(capsule_depth(X, a, b, self.cap_radius[None, None]) - self.allow, 0.0)

    def penetration(self, local: np.ndarray, chunk: int = 8) -> np.ndarray:
        """(n,) the deepest penetration (metres) of each pose; ``local`` (n, 15, 3, 3) rotations of MANO joints
        1-15. Computed in float32, ``chunk`` poses at a time (small chunks stay in cache: fastest)."""
        local = np.asarray(local, dtype=np.float64)
        out = np.empty(len(local))
        for s in range(0, len(local), chunk):
            A, a, b = self._transforms(local[s : s + chunk])
            a, b = a.astype(np.float32), b.astype(np.float32)
            T = (self._w32 @ A.astype(np.float32)).reshape(len(A), -1, 3, 4)
            X = (T * self._vh32[None, :, None, :]).sum(-1)
            excess = self._margin32 - point_segment_distance(X, a, b)  # (k, V, C)
            out[s : s + chunk] = np.maximum(excess.reshape(len(A), -1).max(1), 0.0)
        return out

    def rejection_sample(
        self, draw: Callable[[int], np.ndarray], n: int, max_depth: float | None = None, max_rounds: int = 50
    ) -> np.ndarray:
        """(n, 15, 3, 3) local rotations from ``draw(k) -> (k, 15, 3, 3)`` whose penetration is at most
        ``max_depth`` (default: this collider's); draws are redrawn. After ``max_rounds`` rounds the
        least-penetrating draws fill what is missing (a prior that rarely passes is a bug to look at)."""
        limit = self.max_depth if max_depth is None else float(max_depth)
        kept: list[np.ndarray] = []
        have = 0
        spare_R, spare_d = [], []
        for _ in range(max_rounds):
            need = n - have
            if need <= 0:
                break
            R = draw(max(4, int(need * 1.3 + 0.5)))  # a few at once cost about as much as one
            d = self.penetration(R)
            ok = d <= limit
            kept.append(R[ok][:need])
            have += min(int(ok.sum()), need)
            spare_R.append(R[~ok]), spare_d.append(d[~ok])
        if have < n:
            R, d = np.concatenate(spare_R), np.concatenate(spare_d)
            kept.append(R[np.argsort(d)[: n - have]])
            if not self._warned:
                self._warned = True
                log.warning(
                    "pose prior: %d of %d poses still interpenetrate by more than %.1f mm after %d rounds of "
                    "redrawing; the least penetrating draws are used",
                    n - have,
                    n,
                    limit * 1000,
                    max_rounds,
                )
        return np.concatenate(kept)[:n]


def sample_plausible_poses(model, n: int, rng: np.random.Generator, max_depth: float | None = None) -> np.ndarray:
    """(n, 45) poses (axis-angle, mean included) from ``model``'s prior (a :class:`~handssca.hand.HandModel`).

    With the anatomical prior (the default hand), draws that interpenetrate on its mesh are redrawn; the
    collider is built once and kept on the model. A MANO file's prior is its own captured poses
    (``hands_coeffs``) plus a little noise: real hands, so they are not checked (the capsule fit is made
    for the default hand's mesh and is untested on MANO's)."""
    ex = model.extras
    collider = None
    if ex.get("axes") is not None and ex.get("limits") is not None:
        collider = model.__dict__.get("_prior_collider")
        if collider is None:
            collider = HandCollider.from_model(model)
            model.__dict__["_prior_collider"] = collider
    return sample_hand_pose(
        n,
        rng,
        ex.get("axes"),
        ex.get("limits"),
        model.hands_coeffs,
        model.hands_components.double().cpu().numpy(),
        model.full_hands_mean.double().cpu().numpy(),
        collider=collider,
        max_depth=max_depth,
    )
