"""Putting a view together: the crop's labels without warping an image, the hand's skin data, soft
shadows, flat occluders painted in."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from handssca.data.synthetic.photos import background_layer
from handssca.data.transforms import apply_affine, crop_intrinsics, rot_z, rotate_root
from handssca.frames import pixels_to_joints_img
from handssca.hand.joint_orders import MANO_JOINT_FINGER


def crop_labels(s: dict, M: np.ndarray, rot: float, size: int, bbox: np.ndarray, joints_px: np.ndarray) -> dict:
    """The labels :func:`handssca.data.sample.make_sample` gives a crop (same keys, types and maths),
    without warping an image: the synthetic crop is rendered directly."""
    R = rot_z(rot)
    pose = np.array(s["pose"], dtype=np.float64)
    pose[:3] = rotate_root(pose[:3], R)
    return {
        "joints_img": pixels_to_joints_img(apply_affine(joints_px, M), size).astype(np.float32),
        "valid_joints_img": np.float32(1.0),
        "K": crop_intrinsics(s["K"], M, rot).astype(np.float32),
        "joints_cam": (s["joints_cam"] @ R.T).astype(np.float32),
        "valid_joints_cam": np.float32(1.0),
        "vertices_cam": (s["vertices_cam"] @ R.T).astype(np.float32),
        "valid_vertices": np.float32(1.0),
        "pose": pose.astype(np.float32),
        "betas": np.asarray(s["betas"], dtype=np.float32),
        "transl": (R @ (s["root_rest"] + s["transl"]) - s["root_rest"]).astype(np.float32),
        "valid_mano": np.float32(1.0),
        "hand_side": "right",
        "bbox": np.asarray(bbox, dtype=np.float32),
        "index": s["index"],
    }


def skin_data(hand) -> dict:
    """What drawing a hand needs once per process: faces, its texture (or None: per-vertex colours),
    the texture's mean skin colour (the reference the tone is a tint of) and each vertex's finger."""
    texture = getattr(hand, "texture", None)
    uv, faces_uv = getattr(hand, "uv", None), getattr(hand, "faces_uv", None)
    reference = np.ones(3)
    if texture is not None and uv is not None and faces_uv is not None:
        t = np.asarray(texture)
        on_skin = t[..., 3] > 127 if t.shape[2] == 4 else np.ones(t.shape[:2], bool)
        reference = t[..., :3][on_skin].reshape(-1, 3).mean(0) / (255.0 if t.dtype == np.uint8 else 1.0)
        reference = np.maximum(reference, 0.05)
    else:
        texture = uv = faces_uv = None
    weights = hand.lbs_weights.detach().cpu().numpy()
    finger = MANO_JOINT_FINGER[weights.argmax(1)] if weights.shape[1] == 16 else None
    return dict(faces=hand.faces, texture=texture, uv=uv, faces_uv=faces_uv, reference=reference, vertex_finger=finger)


def darken(image: np.ndarray, mask: np.ndarray, shadow: dict, M: np.ndarray, scale: float, keep=None) -> None:
    """A soft shadow of ``mask`` (shifted by ``shadow['offset']`` canvas px, blurred) darkens image in place,
    except at ``keep`` (H, W) bool when given. The blur runs at a quarter of the resolution."""
    if not mask.any():
        return
    h, w = mask.shape
    dx, dy = (int(round(x)) for x in M[:, :2] @ shadow["offset"])
    shifted = np.zeros((h, w), np.uint8)
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    shifted[ys, xs] = mask[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] * np.uint8(255)
    im = Image.fromarray(shifted).reduce(4)
    im = im.filter(ImageFilter.GaussianBlur(float(max(shadow["blur"] * scale / 4, 0.5)))).resize((w, h), Image.BILINEAR)
    factor = np.asarray(im, dtype=np.float32) * np.float32(-shadow["strength"] / 255.0)
    factor += 1.0
    if keep is not None:
        factor[keep] = 1.0
    image *= factor[..., None]


def paint_flat(image, shape, flat, photos, view_to_canvas, canvas) -> None:
    """Fill ``shape`` with a flat occluder's texture or colour, shaded along canvas x."""
    from handssca.render.raster import sample_layer

    ys, xs = np.nonzero(shape)
    points = np.stack([xs, ys], 1).astype(np.float64)
    if flat["texture"] is not None:
        layer = background_layer(flat["texture"], photos, view_to_canvas, canvas, reduced=True)
        tex = sample_layer(layer, points)
    else:
        tex = flat["colour"].astype(np.float32)[None]
    u = (points @ view_to_canvas[0, :2] + view_to_canvas[0, 2]) / canvas
    a, b = flat["shade"]
    shade = (a + (b - a) * np.clip(u, 0, 1)).astype(np.float32)[:, None]
    image[ys, xs] = np.clip(tex * shade, 0, 1)
