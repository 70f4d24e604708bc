"""The forearm the hand continues into: the skin's tone or a sleeve, under the same light."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handssca.data.synthetic.occluders import object_look

#: The length over which a forearm turns from the hand's axis to its own (metres).
BEND_M = 0.05


@dataclass
class Forearm:
    """The forearm that continues a hand's wrist, in the camera frame: a tube from ``start`` (a point inside
    the open end of the hand's mesh) leaving along ``hand_axis`` (unit, the hand's wrist-to-elbow direction)
    and turning to ``axis`` (the arm's) over :data:`BEND_M`, ``length`` metres long, with an
    elliptic section (``radii`` along ``across`` and ``axis x across``, growing by ``flare`` at the far
    end), skin up to ``sleeve_at`` metres (None: bare arm) and a sleeve (``sleeve_colour``) beyond."""

    start: np.ndarray
    axis: np.ndarray
    hand_axis: np.ndarray
    across: np.ndarray
    radii: np.ndarray
    length: float
    flare: float
    skin: np.ndarray
    sleeve_at: float | None
    sleeve_colour: np.ndarray
    specular: float
    shininess: float

    def mesh(self, segments: int = 20, rings: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices (N, 3), faces (F, 3) outward, per-vertex colours (N, 3)); the far end capped."""
        t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        along = np.linspace(0.0, 1.0, rings) ** 1.5 * self.length  # denser near the wrist
        along = np.sort(np.concatenate([along, [0.01, 0.02, 0.04]]))  # the bend near the wrist
        if self.sleeve_at is not None and 0 < self.sleeve_at < self.length:  # a sharp cuff: two rings there
            along = np.sort(np.concatenate([along, [self.sleeve_at, self.sleeve_at + 1e-4]]))
        grow = 1.0 + (self.flare - 1.0) * along / self.length
        sleeve = np.zeros(len(along), bool) if self.sleeve_at is None else along > self.sleeve_at
        grow = grow * np.where(sleeve, 1.12, 1.0)
        # the centre line leaves the hand along the hand's own axis and turns to the arm's over BEND_M (a
        # bent wrist), so that the tube fills the open end of the hand's mesh whatever the bend
        w = np.clip(along / BEND_M, 0.0, 1.0)[:, None]
        direction = (1 - w) * self.hand_axis + w * self.axis
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        steps = np.diff(along, prepend=0.0)[:, None] * np.vstack([direction[:1], direction[:-1]])
        centres = self.start + np.cumsum(steps, axis=0)
        across = self.across - (direction @ self.across)[:, None] * direction
        across /= np.linalg.norm(across, axis=1, keepdims=True)
        b = np.cross(direction, across)
        ring = (
            np.cos(t)[None, :, None] * self.radii[0] * across[:, None]
            + np.sin(t)[None, :, None] * self.radii[1] * b[:, None]
        )
        v = centres[:, None] + grow[:, None, None] * ring
        n_r = len(along)
        v = np.concatenate([v.reshape(-1, 3), [centres[-1]]])
        k = np.arange(segments)
        nk = (k + 1) % segments
        faces = []
        for i in range(n_r - 1):
            a0, a1 = i * segments, (i + 1) * segments
            faces += [np.stack([a0 + k, a1 + k, a1 + nk], 1), np.stack([a0 + k, a1 + nk, a0 + nk], 1)]
        last = (n_r - 1) * segments
        faces.append(np.stack([np.full(segments, len(v) - 1), last + nk, last + k], 1))
        faces = np.concatenate(faces)
        tri = v[faces]  # orient outwards from the centre line (the cap: along the arm)
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        centre = tri.mean(1)
        nearest = np.argmin(np.linalg.norm(centre[:, None] - centres[None], axis=2), axis=1)
        radial = centre - centres[nearest]
        radial -= (radial * direction[nearest]).sum(1, keepdims=True) * direction[nearest]
        radial = np.where((np.linalg.norm(radial, axis=1) < 1e-6)[:, None], self.axis[None], radial)
        flip = (normal * radial).sum(1) < 0
        faces[flip] = faces[flip][:, ::-1]
        colours = np.where(np.repeat(sleeve, segments)[:, None], self.sleeve_colour[None], self.skin[None])
        colours = np.concatenate([colours, [self.sleeve_colour if sleeve[-1] else self.skin]])
        return v, faces.astype(np.int64), colours


def sample_forearm(
    rng: np.random.Generator, vertices: np.ndarray, joints: np.ndarray, tone: np.ndarray, look: dict
) -> Forearm:
    """A forearm for a hand (vertices (V, 3), joints (21, 3) FreiHAND order, camera frame) of skin ``tone``:
    along the wrist-to-middle-knuckle line turned by up to 30 degrees (the wrist bent), starting just inside
    the open end of the hand's mesh with the section of its last centimetre, 22-30 cm long, widening by
    25-50%; half of the arms wear a sleeve from 2-12 cm past the wrist."""
    wrist, knuckle = joints[0], joints[9]
    axis = wrist - knuckle
    axis /= np.linalg.norm(axis) + 1e-12
    bend = rng.normal(size=3)
    bend -= (bend @ axis) * axis
    bend /= np.linalg.norm(bend) + 1e-12
    angle = np.radians(rng.uniform(0, 30))
    arm = np.cos(angle) * axis + np.sin(angle) * bend  # unit: bend is normal to axis
    across = joints[5] - joints[17]
    across -= (across @ axis) * axis  # the section is measured across the hand's own axis
    across /= np.linalg.norm(across) + 1e-12
    other = np.cross(axis, across)
    rel = vertices - wrist
    t = rel @ axis
    end = t.max()  # where the hand's mesh ends, past the wrist
    near = t > end - 0.012  # its last centimetre: the section the arm continues
    if near.sum() < 8:
        near = np.argsort(-t)[:64]
    pa, pb = rel[near] @ across, rel[near] @ other
    centre = wrist + across * (pa.max() + pa.min()) / 2 + other * (pb.max() + pb.min()) / 2
    radii = np.array([(pa.max() - pa.min()) / 2, (pb.max() - pb.min()) / 2]) * 0.97
    radii = np.maximum(radii, 0.006)
    start = centre + (end - 0.004) * axis  # just inside the mesh's open end: the seam is hidden
    skin = np.clip(tone * rng.uniform(0.95, 1.05, 3), 0, 1)
    sleeve_at = float(rng.uniform(0.03, 0.13)) if rng.random() < 0.5 else None
    sleeve = object_look(rng)["colours"][0]
    return Forearm(
        start=start,
        axis=arm,
        hand_axis=axis,
        across=across,
        radii=radii,
        length=float(rng.uniform(0.22, 0.30)),
        flare=float(rng.uniform(1.25, 1.5)),
        skin=skin,
        sleeve_at=sleeve_at,
        sleeve_colour=np.asarray(sleeve, dtype=np.float64),
        specular=float(look["specular"]),
        shininess=float(look["shininess"]),
    )
