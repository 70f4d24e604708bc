"""A small numpy z-buffer rasteriser: smooth Lambert shading, textures, and lit scenes of several meshes.

Pixel (u, v) has its centre at integer coordinates (OpenCV convention); a point (x, y, z) in the
OpenCV camera frame projects to ``K @ (x/z, y/z, 1)``. It is exact (barycentric coverage of pixel
centres, perspective-correct depth and attributes) and serves as the reference for faster renderers
(:mod:`handssca.render.gl` draws the same pictures with OpenGL).

Textures follow the OBJ convention: ``uv`` (T, 2) in [0, 1] with v = 0 at the bottom of the image,
``faces_uv`` (F, 3) parallel to ``faces``, the image's row 0 at the top; sampled bilinearly with
texel centres at ``(i + 0.5) / W`` and edges clamped, as OpenGL's ``GL_LINEAR`` / ``CLAMP_TO_EDGE``.
"""

from __future__ import annotations

import math
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
    idx = np.asarray(faces).T.reshape(-1)  # corner k of every face, k = 0, 1, 2
    fn3 = np.tile(fn, (3, 1))
    n = np.stack([np.bincount(idx, fn3[:, c], minlength=len(vertices)) for c in range(3)], 1)
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


def texture_float(texture: np.ndarray) -> np.ndarray:
    """A texture image (H, W, C) as float32 in [0, 1] (uint8 is divided by 255)."""
    t = np.asarray(texture)
    return t.astype(np.float32) / 255.0 if t.dtype == np.uint8 else t.astype(np.float32)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup (GL_LINEAR, clamped edges) of a (H, W, C) float texture at uv (N, 2) -> (N, C)."""
    h, w = texture.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = (1.0 - uv[:, 1]) * h - 0.5  # v = 0 is the bottom row of the image (OBJ convention)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = texture[ya, xa] * (1 - fx) + texture[ya, xb] * fx
    bottom = texture[yb, xa] * (1 - fx) + texture[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def _interpolate(values: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Per-vertex values (N, C) interpolated at covered pixels: face (P,) ids, bary (P, 3) -> (P, C)."""
    return (values[faces[face]] * bary[..., None]).sum(1)


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
    uv: np.ndarray | None = None,
    faces_uv: np.ndarray | None = None,
    texture: np.ndarray | None = None,
) -> Rendering:
    """Shade a mesh (camera frame, metres) over a background (H,W,3 float [0,1]) or a plain grey one.

    ``color`` is one RGB or per-vertex (V,3); ``alpha`` < 1 blends the mesh over the background.
    With ``texture`` (H', W', 3 or 4; uint8 or float), ``uv`` and ``faces_uv`` the albedo is the
    texture's RGB times ``color``.
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
        if texture is not None:
            if uv is None or faces_uv is None:
                raise ValueError("render_mesh: a texture needs uv (T, 2) and faces_uv (F, 3)")
            st = _interpolate(np.asarray(uv, dtype=np.float64), np.asarray(faces_uv), face[mask], bary[mask])
            base = base * sample_texture(texture_float(texture), st)[:, :3]
        shaded = base * (ambient + (1 - ambient) * lambert[:, None])
        rgb[mask] = alpha * np.clip(shaded, 0, 1) + (1 - alpha) * rgb[mask]
    return Rendering(rgb=rgb, mask=mask, depth=depth, face=face)


# ---------------------------------------------------------------------------------------------- lit scenes
@dataclass
class MeshPart:
    """One mesh of a lit scene (camera frame, metres).

    ``colors`` (3,) or (N, 3) albedo; with ``texture`` (H, W, 4) uint8 (RGB albedo, A = 255 on skin,
    0 elsewhere, e.g. nails) the albedo is ``colors * texture.rgb * mix(1, tint, texture.a)``: ``tint``
    changes the skin's tone and leaves nails alone. ``ao`` (N,) in [0, 1] darkens the ambient light
    (ambient occlusion). ``wrap`` softens the diffuse fall-off (skin: light wraps past the terminator);
    ``specular`` and ``shininess``: a Blinn-Phong highlight. ``hand``: counts into the hand masks.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | tuple[float, float, float] = SKIN
    uv: np.ndarray | None = None
    faces_uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ao: np.ndarray | None = None
    wrap: float = 0.0
    specular: float = 0.0
    shininess: float = 16.0
    hand: bool = False


@dataclass
class Lighting:
    """Up to three directional lights plus hemispheric ambient light, in the camera frame.

    ``lights``: (direction the light travels (3,), RGB intensity (3,)) pairs; the ambient term is
    ``mix(ground, sky, (1 + n . up) / 2)`` for a surface normal n.
    """

    lights: list[tuple[np.ndarray, np.ndarray]]
    sky: tuple[float, float, float] = (0.35, 0.35, 0.35)
    ground: tuple[float, float, float] = (0.35, 0.35, 0.35)
    up: tuple[float, float, float] = (0.0, -1.0, 0.0)

    @classmethod
    def lambert(cls, light_dir=(0.3, 0.5, 1.0), ambient: float = 0.35) -> Lighting:
        """The plain model of :func:`render_mesh`: ``albedo * (ambient + (1 - ambient) * max(n . l, 0))``."""
        return cls(
            [(np.asarray(light_dir, dtype=np.float64), np.full(3, 1.0 - ambient))], (ambient,) * 3, (ambient,) * 3
        )


MAX_LIGHTS = 3


@dataclass
class ImageLayer:
    """An image behind a scene (or painted anywhere): ``image`` (H, W, 3) uint8 sampled at
    ``view_to_image`` (3x3: view pixels -> image pixels, pixel centres at integers), times ``gains``.
    ``repeat``: tile the image (else clamp its edges); ``nearest``: no interpolation (else bilinear).
    Minified images are sampled from box-reduced levels (mipmaps); ``blur`` > 0 moves ``blur`` levels
    coarser (a soft, out-of-focus look). ``persistent``: the same array is used again (GL keeps its
    texture)."""

    image: np.ndarray
    view_to_image: np.ndarray
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    repeat: bool = False
    nearest: bool = False
    blur: float = 0.0
    persistent: bool = False


def sample_layer(layer: ImageLayer, points: np.ndarray) -> np.ndarray:
    """The layer's colour (P, 3) float32 at view pixels ``points`` (P, 2) (x, y)."""
    A = np.asarray(layer.view_to_image, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(A[:2, :2])))
    level = 0 if layer.nearest else int(max(math.floor(math.log2(max(scale, 1e-9)) + layer.blur + 1e-9), 0))
    im = layer.image[..., :3]
    if level:
        from PIL import Image

        f = 2 ** min(level, int(math.log2(max(min(im.shape[:2]), 1))))
        im = np.asarray(Image.fromarray(np.ascontiguousarray(im)).reduce(f))
        A = np.diag([1.0 / f, 1.0 / f, 1.0]) @ np.array([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ A
        A[:2, 2] -= 0.5
    h, w = im.shape[:2]
    x = points[:, 0] * A[0, 0] + points[:, 1] * A[0, 1] + A[0, 2]
    y = points[:, 0] * A[1, 0] + points[:, 1] * A[1, 1] + A[1, 2]

    def fetch(ix, iy):  # only the texels used are turned to float (a whole photo took ~13 ms)
        ix = np.mod(ix, w) if layer.repeat else np.clip(ix, 0, w - 1)
        iy = np.mod(iy, h) if layer.repeat else np.clip(iy, 0, h - 1)
        return im[iy, ix].astype(np.float32) / 255.0

    if layer.nearest:
        out = fetch(np.floor(x + 0.5).astype(np.int64), np.floor(y + 0.5).astype(np.int64))
    else:
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0)[:, None].astype(np.float32), (y - y0)[:, None].astype(np.float32)
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
        top = fetch(x0, y0) * (1 - fx) + fetch(x0 + 1, y0) * fx
        out = top * (1 - fy) + (fetch(x0, y0 + 1) * (1 - fx) + fetch(x0 + 1, y0 + 1) * fx) * fy
    return np.minimum(out * np.asarray(layer.gains, dtype=np.float32), 1.0)


@dataclass
class SceneRendering:
    """rgb (H, W, 3) float32 on black or the background; coverage (H, W) bool: any mesh; hand_full: the hand's own
    silhouette (other meshes ignored); hand_visible: hand pixels not hidden by other meshes."""

    rgb: np.ndarray
    coverage: np.ndarray
    hand_full: np.ndarray
    hand_visible: np.ndarray


def vertex_lighting(part: MeshPart, lighting: Lighting) -> tuple[np.ndarray, np.ndarray]:
    """The scene shading model at the vertices of ``part`` (the GL vertex shader computes the same):
    (light (V, 3), specular (V, 3)); a pixel is ``clip(albedo * light + specular, 0, 1)`` with both
    interpolated across the triangle (Gouraud shading)."""
    position = np.asarray(part.vertices, dtype=np.float64)
    normal = vertex_normals(position, np.asarray(part.faces))
    ao = np.ones(len(position)) if part.ao is None else np.asarray(part.ao, dtype=np.float64)
    up = np.asarray(lighting.up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    t = (0.5 + 0.5 * normal @ up)[:, None]
    light = (np.asarray(lighting.ground) * (1 - t) + np.asarray(lighting.sky) * t) * ao[:, None]
    spec = np.zeros_like(light)
    view = -position / np.maximum(np.linalg.norm(position, axis=1, keepdims=True), 1e-12)
    for direction, colour in lighting.lights[:MAX_LIGHTS]:
        to_light = -np.asarray(direction, dtype=np.float64)
        to_light = to_light / np.linalg.norm(to_light)
        ndl = normal @ to_light
        light = light + np.maximum((ndl + part.wrap) / (1 + part.wrap), 0)[:, None] * np.asarray(colour)
        if part.specular > 0:
            half = view + to_light
            half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
            hl = np.maximum((normal * half).sum(1), 0) ** part.shininess * (ndl > 0)
            spec = spec + part.specular * hl[:, None] * np.asarray(colour)
    return light, spec


def part_albedo(part: MeshPart, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Albedo (P, 3) of ``part`` at covered pixels (face ids (P,), barycentrics (P, 3))."""
    col = np.asarray(part.colors, dtype=np.float64)
    base = _interpolate(col, part.faces, face, bary) if col.ndim == 2 else np.broadcast_to(col, (len(face), 3))
    if part.texture is None:
        return base
    if part.uv is None or part.faces_uv is None:
        raise ValueError("MeshPart: a texture needs uv (T, 2) and faces_uv (F, 3)")
    st = _interpolate(np.asarray(part.uv, dtype=np.float64), np.asarray(part.faces_uv), face, bary)
    tex = sample_texture(texture_float(part.texture), st)
    skin = tex[:, 3:4] if tex.shape[1] == 4 else np.ones((len(face), 1))
    tint = 1 + (np.asarray(part.tint, dtype=np.float64) - 1) * skin
    return base * tex[:, :3] * tint


def render_scene(
    parts: list[MeshPart],
    K: np.ndarray,
    size: tuple[int, int],
    lighting: Lighting,
    background: ImageLayer | None = None,
) -> SceneRendering:
    """Render lit meshes with a shared z-buffer (see :class:`MeshPart`, :class:`Lighting`) over a
    background layer (black without one)."""
    h, w = size
    best = np.full((h, w), np.inf)
    owner = np.full((h, w), -1)
    hand_full = np.zeros((h, w), dtype=bool)
    rasters = []
    for k, part in enumerate(parts):
        depth, face, bary = rasterize(part.vertices, part.faces, K, size)
        rasters.append((face, bary))
        if part.hand:
            hand_full |= face >= 0
        closer = depth < best
        best[closer], owner[closer] = depth[closer], k
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    if background is not None:
        ys, xs = np.mgrid[0:h, 0:w]
        rgb = sample_layer(background, np.stack([xs.ravel(), ys.ravel()], 1)).reshape(h, w, 3)
    hand_visible = np.zeros((h, w), dtype=bool)
    for k, part in enumerate(parts):
        sel = owner == k
        if not sel.any():
            continue
        if part.hand:
            hand_visible |= sel
        face, bary = rasters[k][0][sel], rasters[k][1][sel]
        light, spec = vertex_lighting(part, lighting)
        albedo = part_albedo(part, face, bary)
        rgb[sel] = np.clip(
            albedo * _interpolate(light, part.faces, face, bary) + _interpolate(spec, part.faces, face, bary), 0, 1
        )
    return SceneRendering(rgb=rgb, coverage=owner >= 0, hand_full=hand_full, hand_visible=hand_visible)
