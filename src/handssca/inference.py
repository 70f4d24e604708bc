"""The user-facing API: images in, hand meshes in the camera frame out.

    from handssca.inference import HandReconstructor
    rec = HandReconstructor.from_checkpoint("runs/demo/best.pt")
    hand = rec("photo.jpg", bbox=(x, y, w, h), hand_side="left")
    hand.vertices, hand.joints, hand.joints_2d   # metres (camera frame) and pixels
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from handssca.data.transforms import crop_affine, crop_intrinsics, square_bbox, warp_image
from handssca.geometry import project, solve_translation, translation_from_box
from handssca.hand.mirror import mirror_faces
from handssca.io_images import read_image, to_rgb_uint8


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """The camera assumed when none is given: focal length = the longer image side (~53 deg), centred."""
    f = float(max(width, height))
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


@dataclass
class HandPrediction:
    """One reconstructed hand, in the original image's camera frame (OpenCV, metres)."""

    vertices: np.ndarray  # (V, 3)
    joints: np.ndarray  # (21, 3) FreiHAND order
    joints_2d: np.ndarray  # (21, 2) pixels of the original image
    faces: np.ndarray  # (F, 3), wound for this hand side
    pose: np.ndarray  # (48) axis-angle relative to hands_mean, of this side's hand model
    betas: np.ndarray  # (10)
    transl: np.ndarray  # (3) camera translation added to the MANO-frame mesh
    K: np.ndarray  # (3, 3)
    K_assumed: bool
    bbox: np.ndarray  # (4) x, y, w, h of the square crop in the original image
    hand_side: str
    image_size: tuple[int, int]  # (H, W)
    extras: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain JSON-able dict of everything except the mesh."""
        return {
            "hand_side": self.hand_side, "image_size_hw": list(self.image_size),
            "bbox_xywh": self.bbox.tolist(), "K": self.K.tolist(), "K_assumed": self.K_assumed,
            "joints_2d_px": self.joints_2d.tolist(), "joints_3d_m": self.joints.tolist(),
            "mano": {"pose_axis_angle": self.pose.tolist(), "betas": self.betas.tolist(), "transl_m": self.transl.tolist(),
                     "pose_convention": "global orientation + 15 joints relative to hands_mean (flat_hand_mean=False)"},
            "joint_order": "FreiHAND (wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4)",
            "units": "metres, OpenCV camera frame (x right, y down, z forward)",
            **self.extras,
        }  # fmt: skip


class TorchRunner:
    """Runs a HandSSCA network on crops (B,3,S,S) -> dict of numpy arrays."""

    def __init__(self, model, device: torch.device) -> None:
        self.model, self.device = model.eval(), device
        self.input_size = model.config.input_size
        self.faces = model.hand.faces

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(crops).to(self.device))
        return {k: out[k].float().cpu().numpy() for k in ("vertices", "joints", "joints_img", "pose_aa", "betas")}


class HandReconstructor:
    """Image + optional box and hand side -> :class:`HandPrediction`. Left hands are mirrored in and out."""

    def __init__(self, runner, faces: np.ndarray, input_size: int) -> None:
        self.runner, self.faces, self.input_size = runner, np.asarray(faces), int(input_size)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, hand_model: str | None = None, device: str | torch.device | None = None) -> HandReconstructor:
        from handssca.model.handssca import load_model

        dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(path, hand_model).to(dev)
        return cls(TorchRunner(model, dev), model.hand.faces, model.config.input_size)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, hand_model: str | None = None) -> HandReconstructor:
        from handssca.export import OnnxRunner

        runner = OnnxRunner(path)
        from handssca.hand import HandModel

        faces = HandModel.load(hand_model).faces if runner.faces is None else runner.faces
        return cls(runner, faces, runner.input_size)

    def __call__(
        self,
        image: str | os.PathLike | np.ndarray,
        bbox: tuple[float, float, float, float] | np.ndarray | None = None,
        hand_side: str = "right",
        K: np.ndarray | None = None,
    ) -> HandPrediction:
        """Reconstruct one hand. ``bbox`` (x, y, w, h) is a hand box in pixels (expanded x1.5 and made
        square, as at training); None uses the whole image. ``K`` defaults to :func:`default_intrinsics`.
        """
        if hand_side not in ("right", "left"):
            raise ValueError(f"hand_side: expected 'right' or 'left'; got {hand_side!r}")
        img = read_image(image) if isinstance(image, (str, os.PathLike)) else to_rgb_uint8(image)
        h, w = img.shape[:2]
        K_assumed = K is None
        K = default_intrinsics(w, h) if K is None else np.asarray(K, dtype=np.float64)
        if bbox is None:
            box = square_bbox(np.array([0.0, 0.0, w, h]))
        else:
            box = square_bbox(np.asarray(bbox, dtype=np.float64), expansion=1.5)
            if box is None:
                raise ValueError(f"bbox: expected a box (x, y, w, h) with positive size; got {tuple(bbox)}")
        flip = hand_side == "left"
        work, Kw, boxw = img, K, box.copy()
        if flip:  # mirror the image (u -> W - 1 - u): a left hand becomes a right hand
            work = img[:, ::-1]
            Kw = K.copy()
            Kw[0, 2] = w - 1 - K[0, 2]
            boxw[0] = w - box[0] - box[2]
        S = self.input_size
        M = crop_affine(boxw, S)
        crop = warp_image(work.astype(np.float32) / 255.0, M, S)
        out = self.runner(crop.transpose(2, 0, 1)[None].astype(np.float32))
        Kc = crop_intrinsics(Kw, M, 0.0)
        uv = out["joints_img"][0].astype(np.float64) * S - 0.5
        t, placement = solve_translation(out["joints"][0], uv, Kc), "2d_joints"
        size_px = np.ptp(project(out["joints"][0] + t, Kc), axis=0).max()
        if not np.isfinite(size_px) or size_px < 0.2 * S / 1.5:
            # degenerate 2D joints (an untrained heatmap head puts them all on one pixel): place the hand
            # in the box instead, as large as the crop's hand box
            t, placement = translation_from_box(out["joints"][0], Kc, np.array([(S - 1) / 2] * 2), S / 1.5), "box"
        verts, joints = out["vertices"][0] + t, out["joints"][0] + t
        reproj = float(np.linalg.norm(project(joints, Kc) - uv, axis=1).mean())
        pose, faces = out["pose_aa"][0].astype(np.float64), self.faces
        if flip:  # back to the left hand in the original camera: x -> -x, faces re-wound, pose mirrored
            m = np.array([-1.0, 1.0, 1.0])
            verts, joints, t = verts * m, joints * m, t * m
            faces = mirror_faces(self.faces)
            pose = (pose.reshape(16, 3) * np.array([1.0, -1.0, -1.0])).ravel()
        return HandPrediction(
            vertices=verts, joints=joints, joints_2d=project(joints, K), faces=np.asarray(faces),
            pose=pose, betas=out["betas"][0].astype(np.float64), transl=np.asarray(t, dtype=np.float64),
            K=K, K_assumed=K_assumed, bbox=box, hand_side=hand_side, image_size=(h, w),
            extras={"crop_reprojection_error_px": reproj, "placement": placement},
        )  # fmt: skip
