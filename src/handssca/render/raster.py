"""A small numpy z-buffer rasteriser with smooth Lambert shading.

Pixel (u, v) has its centre at integer coordinates (OpenCV convention); a point (x, y, z) in the
OpenCV camera frame projects to ``K @ (x/z, y/z, 1)``. It is exact (barycentric coverage of pixel
centres, perspective-correct depth) and serves as the reference for faster renderers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN = (0.87, 0.67, 0.55)


@dataclass
class Rendering:
    """rgb (H,W,3) float in [0,1]; mask (H,W) bool; depth (H,W) metres (inf off the mesh); face (H,W) int (-1 off)."""

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    face: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) for counter-clockwise outward triangles."""
    v = vertices[faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def rasterize(
    vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: tuple[int, int], near: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible triangle per pixel. vertices (V,3) camera frame; size (H, W).

    Returns depth (H,W) (inf where empty), face id (H,W) (-1 where empty), barycentrics (H,W,3)
    (perspective-correct, in the triangle's vertex order).
    """
    h, w = size
    vertices = np.asarray(vertices, dtype=np.float64)
    z = vertices[:, 2]
    proj = (np.asarray(K, dtype=np.float64) @ vertices.T).T
    uv = proj[:, :2] / np.where(np.abs(z) < 1e-12, 1e-12, z)[:, None]
    depth = np.full((h, w), np.inf)
    face_id = np.full((h, w), -1, dtype=np.int64)
    bary = np.zeros((h, w, 3))
    tri_uv = uv[faces]
    tri_z = z[faces]
    lo = np.floor(tri_uv.min(1)).astype(np.int64)
    hi = np.ceil(tri_uv.max(1)).astype(np.int64)
    keep = np.all(tri_z > near, axis=1) & (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < w) & (lo[:, 1] < h)
    for f in np.nonzero(keep)[0]:
        x0, y0 = max(lo[f, 0], 0), max(lo[f, 1], 0)
        x1, y1 = min(hi[f, 0], w - 1), min(hi[f, 1], h - 1)
        if x1 < x0 or y1 < y0:
            continue
        (ax, ay), (bx, by), (cx, cy) = tri_uv[f]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-12:
            continue
        px, py = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        w0 = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area
        w1 = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area
        w2 = 1 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        # perspective-correct interpolation: 1/z is affine in screen space
        inv_z = w0 / tri_z[f, 0] + w1 / tri_z[f, 1] + w2 / tri_z[f, 2]
        zz = 1.0 / inv_z
        sub_d = depth[y0 : y1 + 1, x0 : x1 + 1]
        closer = inside & (zz < sub_d)
        if not closer.any():
            continue
        sub_d[closer] = zz[closer]
        face_id[y0 : y1 + 1, x0 : x1 + 1][closer] = f
        b = np.stack([w0 / tri_z[f, 0], w1 / tri_z[f, 1], w2 / tri_z[f, 2]], -1) * zz[..., None]
        bary[y0 : y1 + 1, x0 : x1 + 1][closer] = b[closer]
    return depth, face_id, bary


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int] | None = None,
    background: np.ndarray | None = None,
    color: tuple[float, float, float] | np.ndarray = SKIN,
    light_dir: tuple[float, float, float] = (0.3, 0.5, 1.0),
    ambient: float = 0.35,
    alpha: float = 1.0,
) -> Rendering:
    """Shade a mesh (camera frame, metres) over a background (H,W,3 float [0,1]) or a plain grey one.

    ``color`` is one RGB or per-vertex (V,3); ``alpha`` < 1 blends the mesh over the background.
    """
    if background is not None:
        size = background.shape[:2]
    if size is None:
        raise ValueError("size: give the image size (H, W) or a background image")
    depth, face, bary = rasterize(vertices, faces, K, size)
    mask = face >= 0
    rgb = np.array(background, dtype=np.float64) if background is not None else np.full((*size, 3), 0.92)
    if mask.any():
        normals = vertex_normals(np.asarray(vertices, dtype=np.float64), faces)
        fv = faces[face[mask]]
        n = (normals[fv] * bary[mask][..., None]).sum(1)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        light = -np.asarray(light_dir, dtype=np.float64)
        light /= np.linalg.norm(light)
        lambert = np.clip(n @ light, 0, 1)
        col = np.asarray(color, dtype=np.float64)
        base = (col[fv] * bary[mask][..., None]).sum(1) if col.ndim == 2 else col[None]
        shaded = base * (ambient + (1 - ambient) * lambert[:, None])
        rgb[mask] = alpha * np.clip(shaded, 0, 1) + (1 - alpha) * rgb[mask]
    return Rendering(rgb=rgb, mask=mask, depth=depth, face=face)
