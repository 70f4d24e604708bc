"""The one sample contract shared by every dataset, and the crop step that produces it.

A sample is a dict of numpy arrays (the DataLoader's default collate turns them into tensors):

- ``image`` (3, S, S) float32 RGB in [0, 1], the crop
- ``joints_img`` (21, 2) normalised crop coordinates, ``(pixel + 0.5) / S`` (the soft-argmax grid)
- ``joints_cam`` (21, 3), ``vertices_cam`` (V, 3): metres, OpenCV camera frame of the crop
- ``K`` (3, 3) intrinsics of the crop
- ``pose`` (48) axis-angle (global orientation in the camera frame + 15 joints relative to
  ``hands_mean``), ``betas`` (10), ``transl`` (3) so that hand(pose, betas) + transl = vertices_cam
- ``hand_side`` "right" or "left" (the original side; left hands are mirrored to right),
  ``bbox`` (4) x, y, w, h in the original image, ``index``
- ``valid_joints_img``, ``valid_joints_cam``, ``valid_vertices``, ``valid_mano``: 1.0 or 0.0
All joints are in FreiHAND order.
"""

from __future__ import annotations

import numpy as np

from handssca.data.transforms import (
    Augment,
    apply_affine,
    crop_affine,
    crop_intrinsics,
    rot_z,
    rotate_root,
    warp_image,
)
from handssca.frames import pixels_to_joints_img, project


def make_sample(
    image: np.ndarray,
    bbox: np.ndarray,
    image_size: int,
    augment: Augment = Augment(),
    K: np.ndarray | None = None,
    joints_img_px: np.ndarray | None = None,
    joints_cam: np.ndarray | None = None,
    vertices_cam: np.ndarray | None = None,
    pose: np.ndarray | None = None,
    betas: np.ndarray | None = None,
    transl: np.ndarray | None = None,
    root_rest: np.ndarray | None = None,
    num_vertices: int = 778,
    hand_side: str = "right",
    index: int = 0,
    extra_images: dict[str, np.ndarray] | None = None,
) -> dict[str, object]:
    """Crop an original (H, W, 3) float image in [0, 1] to ``bbox`` (square x, y, w, h) and move every label along.

    ``joints_img_px`` are original-image pixels; if None they are projected from ``joints_cam`` and K.
    ``root_rest`` (3) is the hand's rest wrist J0(betas), needed to keep ``transl`` consistent under
    rotation. ``extra_images`` (H, W) maps are warped the same way (nearest-ish: bilinear then > 0.5).
    """
    M = crop_affine(bbox, image_size, augment.scale, augment.rot)
    crop = warp_image(image, M, image_size) * np.asarray(augment.color, dtype=np.float32)
    out: dict[str, object] = {"image": np.clip(crop, 0, 1).transpose(2, 0, 1).astype(np.float32)}
    R = rot_z(augment.rot)
    if joints_img_px is None and joints_cam is not None and K is not None:
        joints_img_px = project(joints_cam, K)
    if joints_img_px is not None:
        out["joints_img"] = pixels_to_joints_img(apply_affine(joints_img_px, M), image_size).astype(np.float32)
    else:
        out["joints_img"] = np.zeros((21, 2), np.float32)
    out["valid_joints_img"] = np.float32(joints_img_px is not None)
    out["K"] = (crop_intrinsics(K, M, augment.rot) if K is not None else np.eye(3)).astype(np.float32)
    out["joints_cam"] = (joints_cam @ R.T if joints_cam is not None else np.zeros((21, 3))).astype(np.float32)
    out["valid_joints_cam"] = np.float32(joints_cam is not None)
    out["vertices_cam"] = (vertices_cam @ R.T if vertices_cam is not None else np.zeros((num_vertices, 3))).astype(
        np.float32
    )
    out["valid_vertices"] = np.float32(vertices_cam is not None)
    if pose is not None and betas is not None:
        pose = np.array(pose, dtype=np.float64)
        pose[:3] = rotate_root(pose[:3], R)
        out["pose"] = pose.astype(np.float32)
        out["betas"] = np.asarray(betas, dtype=np.float32)
        if transl is None or root_rest is None:  # without them hand(pose, betas) + transl would not be the hand
            raise ValueError("make_sample: MANO labels need transl and root_rest (the rest wrist J0(betas))")
        out["transl"] = (R @ (root_rest + transl) - root_rest).astype(np.float32)
        out["valid_mano"] = np.float32(1.0)
    else:
        out.update(
            pose=np.zeros(48, np.float32),
            betas=np.zeros(10, np.float32),
            transl=np.zeros(3, np.float32),
            valid_mano=np.float32(0.0),
        )
    out["hand_side"] = hand_side
    out["bbox"] = np.asarray(bbox, dtype=np.float32)
    out["index"] = index
    for name, im in (extra_images or {}).items():
        out[name] = warp_image(im[..., None].astype(np.float32), M, image_size)[..., 0] > 0.5
    return out
