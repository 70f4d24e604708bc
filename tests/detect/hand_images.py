"""Pictures of hands for the detector tests, rendered here from the package's license-free hand."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handssca.frames import project
from handssca.hand import HandModel
from handssca.render.gl import make_renderer

SKIN = np.array([0.87, 0.66, 0.53])


@lru_cache(maxsize=32)
def _render(size: int, roll_deg: float, palm: bool, flat: float, renderer: str) -> tuple[np.ndarray, np.ndarray]:
    return _draw(size, roll_deg, palm, flat, renderer)


def render_right_hand(
    size: int = 256, roll_deg: float = 0.0, palm: bool = False, flat: float = 0.7, renderer: str = "numpy"
) -> tuple[np.ndarray, np.ndarray]:
    """See :func:`_draw`; cached, returned as copies."""
    image, joints = _render(size, float(roll_deg), palm, float(flat), renderer)
    return image.copy(), joints.copy()


def _draw(
    size: int = 256, roll_deg: float = 0.0, palm: bool = False, flat: float = 0.7, renderer: str = "numpy"
) -> tuple[np.ndarray, np.ndarray]:
    """(image, joints_2d): a (size, size, 3) uint8 picture of the default right hand, its back (or palm)
    towards the camera, fingers up turned clockwise by ``roll_deg``, on a grey background, and its 21
    joints projected (pixels, FreiHAND order). ``flat``: 0 = the hand's mean pose, 1 = flat."""
    hand = HandModel.load(None, dtype=torch.float64)
    mean = hand.full_hands_mean.numpy()
    # the hand's fingers point along -x and its palm faces +y: back -> camera, fingers -> up (-y) ...
    face = Rotation.from_matrix([[0, -1, 0], [1, 0, 0], [0, 0, 1]]) * Rotation.from_euler("x", -90, degrees=True)
    if palm:  # ... then turned about the fingers' axis: palm -> camera
        face = Rotation.from_euler("y", 180, degrees=True) * face
    orient = (Rotation.from_euler("z", roll_deg, degrees=True) * face).as_rotvec()
    with torch.no_grad():
        out = hand(
            global_orient=torch.tensor(orient)[None],
            hand_pose=torch.tensor(-flat * mean)[None],
            betas=torch.zeros(1, 10, dtype=torch.float64),
        )
    verts, joints = out["vertices"][0].numpy(), out["joints"][0].numpy()
    shift = [0, 0, 0.45] - verts.mean(0)
    verts, joints = verts + shift, joints + shift
    f = size * 1.6
    K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
    rend = make_renderer(renderer)(
        verts,
        hand.faces,
        K,
        (size, size),
        color=np.tile(SKIN, (len(verts), 1)),
        light_dir=(0.3, -0.4, 1.0),
        ambient=0.4,
    )
    image = np.full((size, size, 3), 0.55, dtype=np.float32)
    image[rend.mask] = rend.rgb[rend.mask]
    return (image * 255).round().astype(np.uint8), project(joints, K)
