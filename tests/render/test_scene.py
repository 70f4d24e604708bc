"""Textures, lit scenes and image layers: the GL renderer against the numpy rasteriser."""

import numpy as np
import pytest
import torch

from handssca.hand import HandModel
from handssca.render.gl import gl_available, make_renderer, make_scene_renderer
from handssca.render.raster import ImageLayer, Lighting, MeshPart, part_albedo, render_mesh, render_scene, sample_layer

GL, GL_WHY = gl_available()
needs_gl = pytest.mark.skipif(not GL, reason=f"no headless GL here: {GL_WHY}")
K = np.array([[260.0, 0, 95.5], [0, 260.0, 100.0], [0, 0, 1]])


@pytest.fixture(scope="module")
def hand():
    """A posed hand with planar UVs and a generated texture (checks, gradients, a 'nail' patch with A = 0)."""
    model = HandModel.default(dtype=torch.float64)
    rest = model.v_template.numpy()
    lo, hi = rest.min(0), rest.max(0)
    uv = np.stack([(rest[:, 0] - lo[0]) / (hi[0] - lo[0]), (rest[:, 2] - lo[2]) / (hi[2] - lo[2])], 1)
    yy, xx = np.mgrid[0:64, 0:64]
    tex = np.zeros((64, 64, 4), np.uint8)
    tex[..., 0] = 120 + 100 * ((xx // 8 + yy // 8) % 2)
    tex[..., 1] = 90 + 2 * yy
    tex[..., 2] = 60 + 2 * xx
    tex[..., 3] = 255
    tex[:, :20, 3] = 0
    pose = torch.tensor(np.random.default_rng(0).normal(0, 0.3, (1, 48)))
    v = model(global_orient=pose[:, :3], hand_pose=pose[:, 3:])["vertices"][0].numpy()
    return dict(v=v - v.mean(0) + [0, 0, 0.45], faces=model.faces, uv=uv.astype(np.float32), texture=tex)


def _box(centre, half):
    c = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * half + centre
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1], [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4]]
    return c, np.array(f + [[1, 5, 7], [1, 7, 3]])


@needs_gl
def test_textured_gl_render_matches_the_numpy_rasteriser(hand):
    gl = make_renderer("gl")
    kw = dict(uv=hand["uv"], faces_uv=hand["faces"], texture=hand["texture"])
    a = gl(hand["v"], hand["faces"], K, (192, 192), **kw)
    b = render_mesh(hand["v"], hand["faces"], K, (192, 192), **kw)
    assert (a.mask & b.mask).sum() / (a.mask | b.mask).sum() > 0.99
    both = a.mask & b.mask
    diff = np.abs(a.rgb[both] - b.rgb[both])
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.05, (diff.mean(), np.percentile(diff, 99))
    untextured = render_mesh(hand["v"], hand["faces"], K, (192, 192))
    assert np.abs(untextured.rgb[both] - b.rgb[both]).mean() > 0.05  # the texture does show


@needs_gl
def test_constant_texture_is_the_vertex_colour_render(hand):
    gl = make_renderer("gl")
    colour = np.array([200, 150, 120], np.uint8)
    flat = np.broadcast_to(np.r_[colour, 255], (16, 16, 4)).copy()
    a = gl(
        hand["v"], hand["faces"], K, (160, 160), color=(1, 1, 1), uv=hand["uv"], faces_uv=hand["faces"], texture=flat
    )
    b = gl(hand["v"], hand["faces"], K, (160, 160), color=colour / 255.0)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert np.abs(a.rgb - b.rgb).max() <= 2 / 255 + 1e-6


def _scene(hand, tint=(0.7, 0.6, 0.5)):
    ao = np.random.default_rng(2).uniform(0.5, 1, len(hand["v"]))
    box_v, box_f = _box(hand["v"].mean(0) + [0.0, 0.0, -0.03], [0.012, 0.03, 0.012])
    lighting = Lighting(
        [
            (np.array([0.3, 0.5, 1.0]), np.array([0.6, 0.55, 0.5])),
            (np.array([-0.8, 0.2, 0.3]), np.array([0.2, 0.25, 0.3])),
        ],
        sky=(0.3, 0.32, 0.4),
        ground=(0.15, 0.12, 0.1),
        up=(0.1, -1.0, 0.0),
    )
    textured = dict(uv=hand["uv"], faces_uv=hand["faces"], texture=hand["texture"], tint=tint)
    parts = [
        MeshPart(
            hand["v"], hand["faces"], (1, 1, 1), ao=ao, wrap=0.3, specular=0.1, shininess=20, hand=True, **textured
        ),
        MeshPart(box_v, box_f, (0.2, 0.4, 0.9), specular=0.3, shininess=40),
    ]
    return parts, lighting


@needs_gl
@pytest.mark.parametrize("kind", ["photo", "stripes", "checker"])
def test_lit_scene_gl_matches_numpy(hand, kind):
    parts, lighting = _scene(hand)
    rng = np.random.default_rng(1)
    if kind == "photo":  # a smooth random image, slightly magnified and turned
        small = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
        from PIL import Image

        image = np.asarray(Image.fromarray(small).resize((120, 120), Image.BILINEAR))
        layer = ImageLayer(image, np.array([[0.6, 0.1, 5], [-0.1, 0.6, 20], [0, 0, 1]]), (1.0, 0.9, 0.8))
    elif kind == "stripes":
        row = (128 + 100 * np.sin(2 * np.pi * (np.arange(32) + 0.5) / 32))[None, :, None] * [1, 0.5, 0.2]
        layer = ImageLayer(row.astype(np.uint8), np.array([[0.5, 0.3, -0.5], [0, 0, 0], [0, 0, 1]]), repeat=True)
    else:
        cells = np.array([[[255, 0, 0], [0, 0, 255]], [[0, 0, 255], [255, 0, 0]]], np.uint8)
        layer = ImageLayer(
            cells, np.array([[0.05, 0.01, -0.5], [-0.01, 0.05, -0.5], [0, 0, 1]]), repeat=True, nearest=True
        )
    a = make_scene_renderer("gl")(parts, K, (192, 192), lighting, layer)
    b = render_scene(parts, K, (192, 192), lighting, layer)
    for name in ("coverage", "hand_full", "hand_visible"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x & y).sum() / (x | y).sum() > 0.99, name
    assert (a.hand_full & ~a.hand_visible).sum() > 50  # the box hides part of the hand
    diff = np.abs(a.rgb - b.rgb)
    inner = np.ones((192, 192), bool) if kind != "checker" else ~_edges(b.rgb)
    assert diff[inner].mean() < 0.01 and np.percentile(diff[inner], 99) < 0.06, (diff.mean(), np.percentile(diff, 99))


def _edges(rgb):
    """Pixels next to a colour step (where nearest sampling may fall either way)."""
    step = np.zeros(rgb.shape[:2], bool)
    d = np.abs(np.diff(rgb, axis=0)).sum(-1) > 0.1
    step[1:] |= d
    step[:-1] |= d
    d = np.abs(np.diff(rgb, axis=1)).sum(-1) > 0.1
    step[:, 1:] |= d
    step[:, :-1] |= d
    return step


def test_tint_changes_skin_and_leaves_nails(hand):
    parts, _ = _scene(hand, tint=(0.5, 0.5, 0.5))
    part = parts[0]
    face = np.arange(len(hand["faces"]))
    bary = np.full((len(face), 3), 1 / 3)
    tinted = part_albedo(part, face, bary)
    part.tint = (1.0, 1.0, 1.0)
    plain = part_albedo(part, face, bary)
    u = hand["uv"][hand["faces"]].mean(1)[:, 0] * 64 - 0.5
    nail, skin = u < 18, u > 21  # texture columns 0-19 have A = 0
    np.testing.assert_allclose(tinted[nail], plain[nail], atol=1e-6)
    np.testing.assert_allclose(tinted[skin], plain[skin] * 0.5, atol=1e-6)


def test_image_layer_sampling_conventions():
    im = np.random.default_rng(0).integers(0, 255, (8, 10, 3)).astype(np.uint8)
    ys, xs = np.mgrid[0:8, 0:10]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    same = sample_layer(ImageLayer(im, np.eye(3)), pts).reshape(8, 10, 3)
    np.testing.assert_allclose(same, im / 255.0, atol=1e-6)  # pixel centres at integers
    shifted = sample_layer(ImageLayer(im, np.array([[1, 0, 10], [0, 1, 8], [0, 0, 1.0]]), repeat=True), pts)
    np.testing.assert_allclose(shifted.reshape(8, 10, 3), im / 255.0, atol=1e-6)  # tiled
    half = sample_layer(ImageLayer(im, np.array([[1, 0, 0.5], [0, 1, 0], [0, 0, 1.0]])), pts[:1])
    np.testing.assert_allclose(half[0], (im[0, 0] / 255.0 + im[0, 1] / 255.0) / 2, atol=1e-6)
