"""Light and skin: environment-like lighting, skin tones, the darkening between fingers."""

from __future__ import annotations

import numpy as np

SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.90, 0.70, 0.58],
        [0.80, 0.60, 0.47],
        [0.66, 0.46, 0.33],
        [0.50, 0.34, 0.23],
        [0.34, 0.22, 0.15],
    ]
)


def finger_segments(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 15 phalanges of a hand's joints (21, 3) (FreiHAND order): starts (15, 3), ends (15, 3), and
    (15,) (finger 0-4: thumb..pinky, level 0-2: proximal..distal) as finger * 3 + level."""
    idx = np.array([[1 + 4 * f + k, 2 + 4 * f + k] for f in range(5) for k in range(3)])
    return joints[idx[:, 0]], joints[idx[:, 1]], np.arange(15)


def ambient_occlusion(
    vertices: np.ndarray, joints: np.ndarray, vertex_finger: np.ndarray, radius: float = 0.009, reach: float = 0.02
) -> np.ndarray:
    """A cheap pose-dependent ambient occlusion (V,) in [0.35, 1]: a vertex darkens near the phalanges of
    other fingers (gaps between fingers, a palm under curled fingers). ``vertex_finger`` (V,): the
    finger (0-4) that moves each vertex, -1 for the palm; palm vertices only see middle and distal
    phalanges (the proximal ones start at the knuckles, always next to the palm)."""
    a, b, seg = finger_segments(joints.astype(np.float32))
    d = b - a
    rel = vertices.astype(np.float32)[:, None] - a[None]  # (V, 15, 3)
    t = np.einsum("vsc,sc->vs", rel, d) / np.maximum(np.einsum("sc,sc->s", d, d), 1e-12)
    np.clip(t, 0, 1, out=t)
    rel -= t[..., None] * d[None]
    dist = np.sqrt(np.einsum("vsc,vsc->vs", rel, rel))
    seg_finger, level = seg // 3, seg % 3
    counts = (seg_finger[None] != vertex_finger[:, None]) & ((vertex_finger[:, None] >= 0) | (level[None] > 0))
    closeness = np.clip(1 - (dist - radius) / reach, 0, 1)
    closeness *= closeness * counts
    return np.clip(1 - 0.45 * closeness.sum(1), 0.35, 1.0)


def sample_lighting(rng: np.random.Generator):
    """Environment-like light: a key light (mostly from the camera's side, sometimes from behind the
    hand), a weaker fill light, and a hemispheric ambient term (sky above, ground bounce below)."""
    from handssca.render.raster import Lighting

    warmth = rng.uniform(-0.12, 0.12)
    key_col = rng.uniform(0.45, 0.85) * np.array([1 + warmth, 1.0, 1 - warmth])
    key = np.array([rng.uniform(-0.9, 0.9), rng.uniform(-0.9, 0.9), 1.0 if rng.random() < 0.9 else -0.6])
    fill = np.array([-key[0] + rng.normal(0, 0.3), -key[1] + rng.normal(0, 0.3), rng.uniform(0.3, 1.0)])
    fill_col = rng.uniform(0.0, 0.3) * np.array([1 - warmth, 1.0, 1 + warmth])
    sky = rng.uniform(0.2, 0.45) * np.array([0.95, 1.0, 1.05 + rng.uniform(0, 0.15)])
    ground = rng.uniform(0.08, 0.25) * np.array([1.05, 1.0, 0.9])
    tilt = rng.normal(0, 0.4, 2)
    up = np.array([tilt[0], -1.0, tilt[1]])
    return Lighting([(key, key_col), (fill, fill_col)], tuple(sky), tuple(ground), tuple(up / np.linalg.norm(up)))
