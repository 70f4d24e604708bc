"""The plain results the package hands around: a detected hand, a reconstructed hand, a video frame's hands.

Dataclasses of numpy arrays with their JSON form, and nothing else: the pictures, the output files and
the web page type what they receive with them, below everything that makes them (:mod:`handssca.detect`,
:mod:`handssca.inference`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RotatedRect:
    """A rectangle in image pixels: centre, size (before rotation) and clockwise rotation (radians)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float

    def corners(self) -> np.ndarray:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left in the crop's own axes."""
        local = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [self.width, self.height]
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        return local @ np.array([[c, -s], [s, c]]).T + [self.cx, self.cy]


@dataclass
class HandDetection:
    """One hand found in an image (:class:`~handssca.detect.HandDetector`); pixels of that image."""

    bbox: np.ndarray  # (4,) x, y, w, h: the axis-aligned box of the 21 landmarks
    score: float  # hand-presence probability from the landmark network, in [0, 1]
    hand_side: str  # "left" or "right", as seen in the image (not selfie-mirrored)
    keypoints_2d: np.ndarray  # (21, 2) x, y pixels, FreiHAND / MediaPipe order
    keypoints_3d: np.ndarray | None = None  # (21, 3) metres about the hand's centre, the image's axes (x right, y down)
    side_score: float = 1.0  # probability of ``hand_side``, in [0.5, 1]
    palm_score: float | None = None  # the palm detector's score, None when the crop came from tracking
    rect: RotatedRect | None = None  # the landmark network's crop

    def to_json(self) -> dict:
        return {
            "bbox_xywh": [float(v) for v in self.bbox],
            "score": float(self.score),
            "hand_side": self.hand_side,
            "side_score": float(self.side_score),
            "palm_score": None if self.palm_score is None else float(self.palm_score),
            "keypoints_2d_px": np.asarray(self.keypoints_2d, dtype=float).tolist(),
            "keypoints_3d_m": None
            if self.keypoints_3d is None or not np.isfinite(self.keypoints_3d).all()
            else np.asarray(self.keypoints_3d, dtype=float).tolist(),
            "keypoints_3d_frame": "metres about the hand's centre, the image's axes (x right, y down, z away); "
            "MediaPipe's world landmarks",
        }


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
    #: identity of the hand model that drew the mesh (:meth:`~handssca.hand.HandModel.identity`: name,
    #: sha256, side, flat_hand_mean, default); None when unknown (an ONNX model exported by an older handssca)
    hand_model: dict | None = None
    extras: dict = field(default_factory=dict)
    #: (mirrored, :class:`~handssca.fit.FitInit`): the landmark fit's parameters in the right-hand frame it was
    #: fitted in, for the next video frame's temporal term; None when the mesh is the network's
    fit_state: tuple | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        """Plain JSON-able dict of everything except the mesh: the core fields, then :attr:`extras`.
        ``hand_model`` is :attr:`hand_model` with ``mirrored`` (true when the mesh is the mirror image of
        the model, a left hand drawn with a right-hand model). ValueError naming the key when an extras
        key is also a core field (it would replace it)."""
        core = {
            "hand_side": self.hand_side,
            "image_size_hw": list(self.image_size),
            "bbox_xywh": self.bbox.tolist(),
            "K": self.K.tolist(),
            "K_assumed": self.K_assumed,
            "joints_2d_px": self.joints_2d.tolist(),
            "joints_3d_m": self.joints.tolist(),
            "mano": {
                "pose_axis_angle": self.pose.tolist(),
                "betas": self.betas.tolist(),
                "transl_m": self.transl.tolist(),
                "pose_convention": "global orientation + 15 joints relative to hands_mean (flat_hand_mean=False)",
            },
            "hand_model": None
            if self.hand_model is None
            else {**self.hand_model, "mirrored": self.hand_side != self.hand_model["side"]},
            "joint_order": "FreiHAND (wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4)",
            "units": "metres, OpenCV camera frame (x right, y down, z forward)",
        }
        clash = [k for k in self.extras if k in core]
        if clash:
            raise ValueError(f"HandPrediction.extras: key {clash[0]!r} is a core field of the prediction's JSON")
        return {**core, **self.extras}


@dataclass
class VideoFrame:
    """One frame of :meth:`~handssca.inference.HandReconstructor.track_video`: its index, its pixels (H, W, 3) uint8, its hands
    and their track numbers (a hand keeps its number while it is tracked)."""

    index: int
    image: np.ndarray
    hands: list[HandPrediction]
    ids: list[int]
