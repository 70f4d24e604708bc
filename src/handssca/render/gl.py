"""Headless OpenGL rendering with moderngl (EGL; Mesa's llvmpipe on a machine without a GPU).

The context is created lazily on the first render in the calling process, never at import, so a
DataLoader worker gets its own (a context created before fork hangs). The output matches
:func:`handssca.render.raster.render_mesh` (same projection, pixel centres and shading model).
"""

from __future__ import annotations

import numpy as np

from handssca.render.raster import SKIN, Rendering, vertex_normals

_VERTEX = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_normal = in_normal;
    v_color = in_color;
}
"""
_FRAGMENT = """
#version 330
uniform vec3 light;
uniform float ambient;
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
void main() {
    float lambert = clamp(dot(normalize(v_normal), light), 0.0, 1.0);
    f_color = vec4(clamp(v_color * (ambient + (1.0 - ambient) * lambert), 0.0, 1.0), 1.0);
}
"""


def _egl_context():
    """A standalone EGL context, created after Triton is loaded when Triton is installed.

    Triton (shipped with CUDA builds of torch, and imported by torch's compiler stack on the first call
    of a registered op such as ``handssca::scan_fwd``) crashed the process with a segmentation fault when
    it was loaded after Mesa's EGL driver had loaded its own LLVM (seen with triton 3.9.0 and Mesa's
    llvmpipe: ``handssca predict`` on CPU with triton installed); loaded first, both work."""
    import importlib.util

    import moderngl

    if importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # a broken triton is torch's business, not the renderer's
            pass
    return moderngl.create_standalone_context(backend="egl")


def gl_available() -> tuple[bool, str]:
    """(True, renderer name) if a headless GL context can be created here, else (False, why)."""
    try:
        ctx = _egl_context()
        name = ctx.info.get("GL_RENDERER", "unknown")
        ctx.release()
        return True, str(name)
    except Exception as e:  # missing package, no EGL library, no device
        return False, f"{type(e).__name__}: {e}"


def projection_from_K(K: np.ndarray, size: tuple[int, int], near: float = 0.01, far: float = 10.0) -> np.ndarray:
    """OpenGL clip matrix for an OpenCV camera K; pixel centres at integers, row 0 at the top."""
    h, w = size
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    return np.array(
        [
            [2 * fx / w, 0, 2 * (cx + 0.5) / w - 1, 0],
            [0, -2 * fy / h, 1 - 2 * (cy + 0.5) / h, 0],
            [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, 1, 0],
        ]
    )


class GLRenderer:
    """Renders meshes in the OpenCV camera frame; create one per process (or DataLoader worker)."""

    def __init__(self) -> None:
        self._ctx = None
        self._prog = None
        self._fbos: dict[tuple[int, int], object] = {}

    def _context(self):
        if self._ctx is None:
            self._ctx = _egl_context()
            self._prog = self._ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        return self._ctx

    def _fbo(self, size: tuple[int, int]):
        if size not in self._fbos:
            ctx = self._context()
            h, w = size
            self._fbos[size] = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((w, h), 4)], depth_attachment=ctx.depth_renderbuffer((w, h))
            )
        return self._fbos[size]

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        K: np.ndarray,
        size: tuple[int, int],
        color: tuple[float, float, float] | np.ndarray = SKIN,
        light_dir: tuple[float, float, float] = (0.3, 0.5, 1.0),
        ambient: float = 0.35,
    ) -> Rendering:
        """rgb (H,W,3) of the shaded mesh on black and its mask; depth is not read back (inf/-1 fields)."""
        ctx = self._context()
        with ctx:  # make this context current: another renderer in the process may have switched it
            return self._render(ctx, vertices, faces, K, size, color, light_dir, ambient)

    def _render(self, ctx, vertices, faces, K, size, color, light_dir, ambient) -> Rendering:
        fbo = self._fbo(size)
        v = np.asarray(vertices, dtype=np.float64)
        n = vertex_normals(v, faces)
        col = np.asarray(color, dtype=np.float64)
        col = np.broadcast_to(col, v.shape) if col.ndim == 1 else col
        data = np.concatenate([v, n, col], axis=1).astype("f4")[faces.reshape(-1)]
        vbo = ctx.buffer(data.tobytes())
        vao = ctx.vertex_array(self._prog, [(vbo, "3f 3f 3f", "in_pos", "in_normal", "in_color")])
        light = -np.asarray(light_dir, dtype=np.float64)
        self._prog["proj"].write(projection_from_K(np.asarray(K, dtype=np.float64), size).T.astype("f4").tobytes())
        self._prog["light"].value = tuple(light / np.linalg.norm(light))
        self._prog["ambient"].value = float(ambient)
        fbo.use()
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render()
        h, w = size
        raw = np.frombuffer(fbo.read(components=4, dtype="f1"), dtype=np.uint8).reshape(h, w, 4)[::-1]
        vao.release()
        vbo.release()
        rgb = raw[..., :3].astype(np.float32) / 255.0
        mask = raw[..., 3] > 0
        return Rendering(rgb=rgb, mask=mask, depth=np.full((h, w), np.inf), face=np.full((h, w), -1))

    def release(self) -> None:
        for fbo in self._fbos.values():
            fbo.release()
        self._fbos.clear()
        if self._ctx is not None:
            self._ctx.release()
            self._ctx = None


def make_renderer(prefer: str = "auto"):
    """A callable ``render(vertices, faces, K, size, color, light_dir, ambient) -> Rendering``.

    ``prefer``: "gl" (moderngl/EGL), "numpy" (the reference rasteriser) or "auto" (gl when it works).
    """
    from handssca.render.raster import render_mesh

    if prefer == "numpy":
        return lambda v, f, K, size, **kw: render_mesh(v, f, K, size, background=np.zeros((*size, 3)), **kw)
    if prefer in ("gl", "auto"):
        ok, why = gl_available() if prefer == "auto" else (True, "")
        if ok:
            renderer = GLRenderer()
            return renderer.render
    return lambda v, f, K, size, **kw: render_mesh(v, f, K, size, background=np.zeros((*size, 3)), **kw)
