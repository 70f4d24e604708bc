"""Drawing on images and placing meshes for a view: skeletons, orbit cameras, side views."""

from __future__ import annotations

import numpy as np

from handssca.hand.joint_orders import FREIHAND_BONES

#: Bones of the 21 FreiHAND-order joints, for drawing skeletons (:data:`~handssca.hand.joint_orders.FREIHAND_BONES`).
BONES = list(FREIHAND_BONES)


#: Box colours of hand sides in pictures: right hands blue, left hands orange (as in the web demo's 3D view).
SIDE_COLORS = {"right": (40, 110, 230), "left": (240, 140, 30)}


def draw_boxes(image: np.ndarray, boxes, labels, colors, width: int = 2) -> np.ndarray:
    """Draw (x, y, w, h) pixel boxes with a text label above each on an (H, W, 3) uint8 image -> uint8."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(pil)
    H, W = pil.height, pil.width
    for (x, y, w, h), label, color in zip(boxes, labels, colors):
        draw.rectangle([float(x), float(y), float(x + w), float(y + h)], outline=tuple(color), width=width)
        left, top, right, bottom = draw.textbbox((0, 0), label)
        tw, th = right - left, bottom - top
        # above the box; inside it when the box reaches the top; always within the picture
        ty = float(y) - th - 3 if float(y) - th - 3 >= 0 else max(float(y), 0.0) + width + 1
        tx = min(max(float(x), 1.0), max(W - tw - 2.0, 1.0))
        ty = min(ty, max(H - th - 2.0, 1.0))
        left, top, right, bottom = draw.textbbox((tx, ty), label)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=tuple(color))
        draw.text((tx, ty), label, fill=(255, 255, 255))
    return np.asarray(pil)


def draw_joints(image: np.ndarray, joints_px: np.ndarray, color=(230, 30, 30), radius: int = 2) -> np.ndarray:
    """Draw a 21-joint skeleton (pixels, centres at integers) on an (H,W,3) float or uint8 image -> uint8."""
    from PIL import Image, ImageDraw

    img = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(np.ascontiguousarray(img))
    draw = ImageDraw.Draw(pil)
    pts = [tuple(float(v) for v in p) for p in joints_px]
    for a, b in BONES:
        draw.line([pts[a], pts[b]], fill=tuple(color), width=max(1, radius // 2 + 1))
    for x, y in pts:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=tuple(color))
    return np.asarray(pil)


def orbit_view(vertices: np.ndarray, yaw_deg: float, pitch_deg: float, size: int = 256, fill: float = 0.8):
    """Place a mesh (V,3) in front of a camera looking at its centre from (yaw, pitch); returns (verts_cam, K)."""
    from scipy.spatial.transform import Rotation

    c = (vertices.max(0) + vertices.min(0)) / 2
    R = Rotation.from_euler("yx", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    v = (vertices - c) @ R.T
    dist = 0.6
    v = v + np.array([0.0, 0.0, dist])
    extent = np.abs(v[:, :2] / v[:, 2:3]).max()
    f = fill * size / 2 / max(extent, 1e-6)
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    return v, K


def side_view(vertices: np.ndarray, faces: np.ndarray, size: int = 320, render=None) -> np.ndarray:
    """The mesh seen from its side (rotated 90 degrees about the image's vertical axis), on grey."""
    from handssca.render.raster import render_mesh

    v, K = orbit_view(np.asarray(vertices, dtype=np.float64), 90.0, 0.0, size)
    if render is not None:
        r = render(v, faces, K, (size, size), color=(0.55, 0.75, 0.95))
        img = np.full((size, size, 3), 0.92, np.float32)
        img[r.mask] = r.rgb[r.mask]
        return img
    return render_mesh(v, faces, K, (size, size), color=(0.55, 0.75, 0.95)).rgb
