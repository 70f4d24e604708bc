"""Headless OpenGL rendering with moderngl (EGL; Mesa's llvmpipe on a machine without a GPU).

The context is created lazily on the first render in the calling process, never at import, so a
DataLoader worker gets its own (a context created before fork hangs). The output matches the numpy
rasteriser's (:func:`handssca.render.raster.render_mesh` and :func:`~handssca.render.raster.render_scene`:
same projection, pixel centres, texture sampling and shading model) up to 8-bit rounding, except where a
photo layer is minified: GL blends two mipmap levels, numpy samples one prepared reduction.
"""

from __future__ import annotations

import numpy as np

from handssca.render.raster import (
    MAX_LIGHTS,
    SKIN,
    ImageLayer,
    Lighting,
    MeshPart,
    Rendering,
    SceneRendering,
    vertex_normals,
)

# the shading model of handssca.render.raster (lighting(), then albedo * light + spec), evaluated per
# vertex for scenes (PER_VERTEX 1, as raster.render_scene) or per fragment (0, as raster.render_mesh)
_LIGHTING = """
uniform vec3 light_dir[MAX_LIGHTS];
uniform vec3 light_col[MAX_LIGHTS];
uniform int n_lights;
uniform vec3 sky;
uniform vec3 ground;
uniform vec3 up;
uniform float wrap;
uniform float specular;
uniform float shininess;
void lighting(vec3 n, vec3 pos, float ao, out vec3 light, out vec3 spec) {
    vec3 view = normalize(-pos);
    light = mix(ground, sky, 0.5 + 0.5 * dot(n, normalize(up))) * ao;
    spec = vec3(0.0);
    for (int k = 0; k < n_lights; k++) {
        vec3 l = -normalize(light_dir[k]);
        float ndl = dot(n, l);
        light += max((ndl + wrap) / (1.0 + wrap), 0.0) * light_col[k];
        if (specular > 0.0 && ndl > 0.0) {
            vec3 h = normalize(view + l);
            spec += specular * pow(max(dot(n, h), 0.0), shininess) * light_col[k];
        }
    }
}
"""
_VERTEX = """
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_uv;
in float in_ao;
out vec3 v_color;
out vec2 v_uv;
#if PER_VERTEX
out vec3 v_light;
out vec3 v_spec;
#else
out vec3 v_pos;
out vec3 v_normal;
out float v_ao;
#endif
void main() {
    gl_Position = proj * vec4(in_pos, 1.0);
    v_color = in_color;
    v_uv = vec2(in_uv.x, 1.0 - in_uv.y);  // OBJ v = 0 is the image's last row; the texture is uploaded row 0 first
#if PER_VERTEX
    lighting(normalize(in_normal), in_pos, in_ao, v_light, v_spec);
#else
    v_pos = in_pos;
    v_normal = in_normal;
    v_ao = in_ao;
#endif
}
"""
_FRAGMENT = """
uniform sampler2D tex;
uniform vec3 tint;
uniform vec4 label;
in vec3 v_color;
in vec2 v_uv;
#if PER_VERTEX
in vec3 v_light;
in vec3 v_spec;
#else
in vec3 v_pos;
in vec3 v_normal;
in float v_ao;
#endif
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_label;
void main() {
    vec4 t = texture(tex, v_uv);
    vec3 albedo = v_color * t.rgb * mix(vec3(1.0), tint, t.a);
#if PER_VERTEX
    vec3 light = v_light;
    vec3 spec = v_spec;
#else
    vec3 light, spec;
    lighting(normalize(v_normal), v_pos, v_ao, light, spec);
#endif
    f_color = vec4(clamp(albedo * light + spec, 0.0, 1.0), 1.0);
    f_label = label;  // alpha 0: added to what is there (blend ONE, ONE_MINUS_SRC_ALPHA)
}
"""


# an image layer behind the scene: a quad over the whole view, drawn first at the far end of the depth range
_LAYER_VERTEX = """
#version 330
uniform vec2 view_size;
uniform mat3 view_to_uv;
in vec2 in_px;
out vec2 v_uv;
void main() {
    gl_Position = vec4((in_px.x + 0.5) / view_size.x * 2.0 - 1.0, 1.0 - (in_px.y + 0.5) / view_size.y * 2.0, 0.9999, 1.0);
    v_uv = (view_to_uv * vec3(in_px, 1.0)).xy;
}
"""
_LAYER_FRAGMENT = """
#version 330
uniform sampler2D tex;
uniform vec3 gains;
uniform float bias;
in vec2 v_uv;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_label;
void main() {
    f_color = vec4(min(texture(tex, v_uv, bias).rgb * gains, 1.0), 1.0);
    f_label = vec4(0.0);
}
"""


def _shaders(per_vertex: bool) -> tuple[str, str]:
    head = f"#version 330\n#define PER_VERTEX {int(per_vertex)}\n#define MAX_LIGHTS {MAX_LIGHTS}\n"
    light = _LIGHTING if per_vertex else ""
    return head + light + _VERTEX, head + ("" if per_vertex else _LIGHTING) + _FRAGMENT


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
    """Renders meshes in the OpenCV camera frame; create one per process (or DataLoader worker).

    :meth:`render` is the plain Lambert picture of :func:`handssca.render.raster.render_mesh`;
    :meth:`render_scene` the lit scene of :func:`handssca.render.raster.render_scene`.
    """

    def __init__(self) -> None:
        self._ctx = None
        self._progs: dict[bool, object] = {}  # per_vertex -> program
        self._fbos: dict[tuple[int, int], object] = {}
        self._textures: dict[int, tuple[np.ndarray, object]] = {}  # id -> (the array, kept alive; its GL texture)
        self._topology: dict[tuple[int, int], tuple] = {}  # (id faces, id faces_uv) -> (arrays kept alive, maps)
        self._white = None
        self._layer_prog = None

    def _context(self):
        if self._ctx is None:
            self._ctx = _egl_context()
            for per_vertex in (True, False):
                vs, fs = _shaders(per_vertex)
                self._progs[per_vertex] = self._ctx.program(vertex_shader=vs, fragment_shader=fs)
            # untextured parts: white albedo, alpha 0 so that no tint applies (as raster.part_albedo)
            self._white = self._ctx.texture((1, 1), 4, bytes([255, 255, 255, 0]))
            self._layer_prog = self._ctx.program(vertex_shader=_LAYER_VERTEX, fragment_shader=_LAYER_FRAGMENT)
        return self._ctx

    def _fbo(self, size: tuple[int, int]):
        if size not in self._fbos:
            ctx = self._context()
            h, w = size
            self._fbos[size] = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((w, h), 4), ctx.renderbuffer((w, h), 4)],
                depth_attachment=ctx.depth_renderbuffer((w, h)),
            )
        return self._fbos[size]

    def _layer(self, ctx, layer: ImageLayer, size: tuple[int, int]) -> None:
        """Draw an image layer over the whole view (before the meshes)."""
        im = np.asarray(layer.image)
        if layer.persistent:
            tex = self._texture(im, mipmaps=not layer.nearest)
            temporary = None
        else:
            rgba = np.concatenate([im[..., :3], np.full((*im.shape[:2], 1), 255, np.uint8)], axis=2)
            tex = temporary = ctx.texture((im.shape[1], im.shape[0]), 4, np.ascontiguousarray(rgba).tobytes())
            if not layer.nearest:
                tex.build_mipmaps()
        tex.repeat_x = tex.repeat_y = bool(layer.repeat)
        if layer.nearest:
            tex.filter = (ctx.NEAREST, ctx.NEAREST)
        else:
            tex.filter = (ctx.LINEAR_MIPMAP_LINEAR, ctx.LINEAR)
        h, w = size
        ih, iw = im.shape[:2]
        # view px -> image px (centres at integers) -> GL texture coordinates (texel centres at (i + 0.5) / n)
        to_uv = np.array([[1.0 / iw, 0, 0.5 / iw], [0, 1.0 / ih, 0.5 / ih], [0, 0, 1]]) @ layer.view_to_image
        prog = self._layer_prog
        prog["view_size"].value = (float(w), float(h))
        prog["view_to_uv"].write(to_uv.T.astype("f4").tobytes())
        prog["gains"].value = tuple(float(x) for x in layer.gains)
        prog["bias"].value = float(layer.blur)
        prog["tex"].value = 0
        tex.use(0)
        quad = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]], dtype="f4")
        vbo = ctx.buffer(quad.tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "2f", "in_px")])
        vao.render(ctx.TRIANGLE_STRIP)
        vao.release()
        vbo.release()
        if temporary is not None:
            temporary.release()

    def _texture(self, texture: np.ndarray | None, mipmaps: bool = False):
        if texture is None:
            return self._white
        key = id(texture)
        if key not in self._textures:
            t = np.asarray(texture)
            t = np.clip(np.round(t * 255), 0, 255).astype(np.uint8) if t.dtype != np.uint8 else t
            if t.shape[2] == 3:
                t = np.concatenate([t, np.full((*t.shape[:2], 1), 255, np.uint8)], axis=2)
            if len(self._textures) >= 32:
                _, old = self._textures.pop(next(iter(self._textures)))
                old.release()
            gl_tex = self._ctx.texture((t.shape[1], t.shape[0]), 4, np.ascontiguousarray(t).tobytes())
            gl_tex.repeat_x = gl_tex.repeat_y = False  # clamp to edge, as the numpy sampler
            if mipmaps:
                gl_tex.build_mipmaps()
            self._textures[key] = (texture, gl_tex)  # holding the array keeps its id from being reused
        return self._textures[key][1]

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        K: np.ndarray,
        size: tuple[int, int],
        color: tuple[float, float, float] | np.ndarray = SKIN,
        light_dir: tuple[float, float, float] = (0.3, 0.5, 1.0),
        ambient: float = 0.35,
        uv: np.ndarray | None = None,
        faces_uv: np.ndarray | None = None,
        texture: np.ndarray | None = None,
    ) -> Rendering:
        """rgb (H,W,3) of the shaded mesh on black and its mask; depth is not read back (inf/-1 fields).

        ``texture`` (with ``uv`` and ``faces_uv``): albedo = texture RGB times ``color``, as render_mesh."""
        part = MeshPart(  # tint (1, 1, 1): the texture's alpha (skin / nails) changes nothing here
            vertices, faces, color, uv, faces_uv, texture
        )
        out = self.render_scene([part], K, size, Lighting.lambert(light_dir, ambient), per_vertex=False)
        h, w = size
        return Rendering(rgb=out.rgb, mask=out.coverage, depth=np.full((h, w), np.inf), face=np.full((h, w), -1))

    def render_scene(
        self,
        parts: list[MeshPart],
        K: np.ndarray,
        size: tuple[int, int],
        lighting: Lighting,
        background: ImageLayer | None = None,
        per_vertex: bool = True,
    ) -> SceneRendering:
        """The lit scene of :func:`handssca.render.raster.render_scene`, drawn by OpenGL; lighting is
        evaluated per vertex as there (``per_vertex=False``: per fragment, as ``render_mesh``)."""
        ctx = self._context()
        with ctx:  # make this context current: another renderer in the process may have switched it
            return self._render_scene(ctx, self._progs[per_vertex], parts, K, size, lighting, background)

    def _corners(self, part: MeshPart) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """GL vertices of a part: (vertex ids (N',), uv ids (N',) or None, triangles (F, 3) into them).
        A textured mesh gets one GL vertex per distinct (vertex, uv) pair; cached per topology."""
        if part.texture is None:
            return np.arange(len(part.vertices)), None, np.asarray(part.faces)
        if part.uv is None or part.faces_uv is None:
            raise ValueError("MeshPart: a texture needs uv (T, 2) and faces_uv (F, 3)")
        key = (id(part.faces), id(part.faces_uv))
        if key not in self._topology:
            pairs = np.stack([np.asarray(part.faces).reshape(-1), np.asarray(part.faces_uv).reshape(-1)], 1)
            unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
            if len(self._topology) >= 8:
                self._topology.pop(next(iter(self._topology)))
            maps = (unique[:, 0], unique[:, 1], inverse.reshape(-1, 3).astype(np.int64))
            self._topology[key] = ((part.faces, part.faces_uv), maps)  # holding the arrays keeps their ids
        return self._topology[key][1]

    def _part_buffer(self, ctx, prog, part: MeshPart):
        v = np.asarray(part.vertices, dtype=np.float64)
        n = vertex_normals(v, np.asarray(part.faces))
        vid, tid, tris = self._corners(part)
        col = np.asarray(part.colors, dtype=np.float32)
        data = np.empty((len(vid), 12), np.float32)
        data[:, 0:3] = v[vid]
        data[:, 3:6] = n[vid]
        data[:, 6:9] = col if col.ndim == 1 else col[vid]
        data[:, 9:11] = 0.5 if tid is None else np.asarray(part.uv, dtype=np.float32)[tid]
        data[:, 11] = 1.0 if part.ao is None else np.asarray(part.ao, dtype=np.float32)[vid]
        vbo = ctx.buffer(data.tobytes())
        ibo = ctx.buffer(tris.astype("i4").tobytes())
        fmt = ("3f 3f 3f 2f 1f", "in_pos", "in_normal", "in_color", "in_uv", "in_ao")
        vao = ctx.vertex_array(prog, [(vbo, *fmt)], index_buffer=ibo, index_element_size=4, skip_errors=True)
        return (vbo, ibo), vao

    def _render_scene(self, ctx, prog, parts, K, size, lighting, background) -> SceneRendering:
        fbo = self._fbo(size)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(ctx.DEPTH_TEST | ctx.BLEND)
        ctx.disable(ctx.CULL_FACE)
        ctx.blend_func = ctx.ONE, ctx.ONE_MINUS_SRC_ALPHA  # colour (alpha 1) replaces; labels (alpha 0) add
        if background is not None:
            self._layer(ctx, background, size)
        prog["proj"].write(projection_from_K(np.asarray(K, dtype=np.float64), size).T.astype("f4").tobytes())
        lights = list(lighting.lights[:MAX_LIGHTS])
        dirs = np.zeros((MAX_LIGHTS, 3), np.float32)
        cols = np.zeros((MAX_LIGHTS, 3), np.float32)
        for k, (d, c) in enumerate(lights):
            dirs[k], cols[k] = d, c
        dirs[len(lights) :] = (0, 0, 1)
        prog["light_dir"].write(dirs.tobytes())
        prog["light_col"].write(cols.tobytes())
        prog["n_lights"].value = len(lights)
        prog["sky"].value = tuple(float(x) for x in lighting.sky)
        prog["ground"].value = tuple(float(x) for x in lighting.ground)
        prog["up"].value = tuple(float(x) for x in lighting.up)
        prog["tex"].value = 0
        # the hand first: another mesh then only marks the hand pixels it hides
        for part in sorted(parts, key=lambda p: not p.hand):
            buffers, vao = self._part_buffer(ctx, prog, part)
            tex = self._texture(part.texture)
            tex.repeat_x = tex.repeat_y = False
            tex.filter = (ctx.LINEAR, ctx.LINEAR)
            tex.use(0)
            prog["tint"].value = tuple(float(x) for x in part.tint)
            prog["wrap"].value = float(part.wrap)
            prog["specular"].value = float(part.specular)
            prog["shininess"].value = float(part.shininess)
            prog["label"].value = (1.0, 0.0, 0.0, 0.0) if part.hand else (0.0, 1.0, 0.0, 0.0)
            vao.render()
            vao.release()
            for b in buffers:
                b.release()
        ctx.disable(ctx.BLEND)
        h, w = size
        raw = np.frombuffer(fbo.read(components=4, dtype="f1", attachment=0), dtype=np.uint8).reshape(h, w, 4)[::-1]
        lab = np.frombuffer(fbo.read(components=4, dtype="f1", attachment=1), dtype=np.uint8).reshape(h, w, 4)[::-1]
        hand_full = lab[..., 0] > 0
        return SceneRendering(
            rgb=raw[..., :3].astype(np.float32) / 255.0,
            coverage=hand_full | (lab[..., 1] > 0),
            hand_full=hand_full,
            hand_visible=hand_full & (lab[..., 1] == 0),
        )

    def release(self) -> None:
        for fbo in self._fbos.values():
            fbo.release()
        self._fbos.clear()
        for _, tex in self._textures.values():
            tex.release()
        self._textures.clear()
        if self._ctx is not None:
            self._ctx.release()
            self._ctx = None


def make_renderer(prefer: str = "auto"):
    """A callable ``render(vertices, faces, K, size, color, light_dir, ambient, uv, faces_uv, texture) -> Rendering``.

    ``prefer``: "gl" (moderngl/EGL), "numpy" (the reference rasteriser) or "auto" (gl when it works).
    """
    from handssca.render.raster import render_mesh

    if prefer in ("gl", "auto"):
        ok, why = gl_available() if prefer == "auto" else (True, "")
        if ok:
            return GLRenderer().render
    return lambda v, f, K, size, **kw: render_mesh(v, f, K, size, background=np.zeros((*size, 3)), **kw)


def make_scene_renderer(prefer: str = "auto"):
    """A callable ``render_scene(parts, K, size, lighting) -> SceneRendering``; ``prefer`` as make_renderer."""
    from handssca.render.raster import render_scene

    if prefer in ("gl", "auto"):
        ok, why = gl_available() if prefer == "auto" else (True, "")
        if ok:
            return GLRenderer().render_scene
    return render_scene
