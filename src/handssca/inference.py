"""The user-facing API: images in, hand meshes in the camera frame out.

from handssca.inference import HandReconstructor
rec = HandReconstructor.from_checkpoint("runs/demo/best.pt")
hand = rec("photo.jpg", bbox=(x, y, w, h), hand_side="left")
hand.vertices, hand.joints, hand.joints_2d   # metres (camera frame) and pixels
hands = rec.reconstruct_all("photo.jpg")     # every hand the bundled detector finds, each with its side
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from handssca.data.transforms import bbox_from_points, crop_affine, crop_intrinsics, square_bbox, warp_image
from handssca.environment import resolve_device
from handssca.frames import (
    joints_img_to_pixels,
    mirror_box,
    mirror_faces,
    mirror_intrinsics,
    mirror_points,
    mirror_pose,
    project,
    whole_image_box,
)
from handssca.geometry import place_in_crop
from handssca.io_images import ScaledImage, load_image, to_rgb_uint8
from handssca.model.handssca import OUTPUT_KEYS

#: The longest side, in pixels, at which a large image file is decoded for reconstruction, unless the hand
#: box needs more to reach the network's full input resolution (see :meth:`HandReconstructor.working_scale`).
MAX_WORKING_SIDE = 4096


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """The camera assumed when none is given: focal length = the longer image side (~53 deg), centred."""
    f = float(max(width, height))
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


class BoxOutsideImageError(ValueError):
    """The hand box given (``--bbox``) does not overlap the image."""


def _fmt_box(bbox) -> str:
    return ",".join(f"{float(v):g}" for v in bbox)


def check_bbox(bbox) -> np.ndarray:
    """(4,) float x, y, w, h of a hand box given by the user; ValueError unless finite with w, h > 0."""
    try:
        box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"bbox (--bbox): expected 4 numbers x,y,w,h in pixels; got {bbox!r}") from None
    if box.shape != (4,):
        raise ValueError(f"bbox (--bbox): expected 4 numbers x,y,w,h in pixels; got {box.size}")
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"bbox (--bbox) {_fmt_box(box)}: expected finite x,y,w,h in pixels with w > 0 and h > 0")
    return box


def check_bbox_overlaps(box: np.ndarray, width: int, height: int, name: str = "image") -> None:
    """:class:`BoxOutsideImageError` when the box (x, y, w, h) has no pixel in common with a width x height image."""
    x, y, w, h = (float(v) for v in box)
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise BoxOutsideImageError(f"bbox (--bbox) {_fmt_box(box)} lies outside the {width}x{height} image {name}")


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
            "joint_order": "FreiHAND (wrist, thumb1-4, index1-4, middle1-4, ring1-4, pinky1-4)",
            "units": "metres, OpenCV camera frame (x right, y down, z forward)",
            **self.extras,
        }


#: Videos: the palm detector also runs every this many frames, to find hands that came into view while
#: others were tracked (it always runs when a tracked hand is lost).
REDETECT_EVERY = 10

#: One-Euro filter of ``track_video(smooth=True)``: cutoff at rest (Hz) and speed coefficient (per metre).
SMOOTH_MIN_CUTOFF, SMOOTH_BETA = 1.0, 20.0


@dataclass
class VideoFrame:
    """One frame of :meth:`HandReconstructor.track_video`: its index, its pixels (H, W, 3) uint8, its hands
    and their track numbers (a hand keeps its number while it is tracked)."""

    index: int
    image: np.ndarray
    hands: list[HandPrediction]
    ids: list[int]


class TorchRunner:
    """Runs a HandSSCA network on crops (B,3,S,S) -> dict of numpy arrays."""

    def __init__(self, model, device: torch.device) -> None:
        self.model, self.device = model.eval(), device
        self.input_size = model.config.input_size
        self.faces = model.hand.faces

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(crops).to(self.device))
        return {k: out[k].float().cpu().numpy() for k in OUTPUT_KEYS}


class HandReconstructor:
    """Image + optional box and hand side -> :class:`HandPrediction`. Left hands are mirrored in and out."""

    def __init__(
        self,
        runner,
        faces: np.ndarray,
        input_size: int,
        max_working_side: int = MAX_WORKING_SIDE,
        detector=None,
        device: str | torch.device | None = "cpu",
    ) -> None:
        self.runner, self.faces, self.input_size = runner, np.asarray(faces), int(input_size)
        self.max_working_side = int(max_working_side)
        self._detector, self._detector_device = detector, device
        self._detector_lock = threading.Lock()

    @property
    def detector(self):
        """The :class:`~handssca.detect.HandDetector` used when no box is given (made on first use, on
        the network's device; once, whichever threads ask for it first)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    from handssca.detect import HandDetector

                    self._detector = HandDetector(device=self._detector_device)
        return self._detector

    def detect(self, image: str | os.PathLike | np.ndarray | ScaledImage) -> tuple[ScaledImage, list]:
        """(the image at its working resolution, the hands found in it): each
        :class:`~handssca.detect.HandDetection` in the original image's pixels, best first."""
        scaled = self._as_scaled(image)
        hands = self.detector(scaled.pixels)
        if scaled.scale_xy != (1.0, 1.0):
            for hand in hands:
                hand.keypoints_2d = scaled.to_original(hand.keypoints_2d)
                hand.bbox = bbox_from_points(hand.keypoints_2d, expansion=1.0)
                hand.rect = None  # working-image pixels; not carried into the original's
        return scaled, hands

    def reconstruct_all(
        self,
        image: str | os.PathLike | np.ndarray | ScaledImage,
        K: np.ndarray | None = None,
        hand_side: str | None = None,
        detections: list | None = None,
        errors: list[str] | None = None,
        source: str | os.PathLike | None = None,
    ) -> list[HandPrediction]:
        """Find every hand with :attr:`detector` and reconstruct each in its detected box with its
        detected side (``hand_side`` overrides the side for all). ``detections``: hands found already
        (e.g. tracked in a video), in the original image's pixels. [] when no hand is found. Each
        prediction's ``extras["detection"]`` holds the detection (box, score, side, 21 keypoints).

        A hand that cannot be reconstructed (a degenerate detected box) raises ValueError naming it, or,
        when ``errors`` is a list, is left out and described there so that the other hands are kept.

        A large file is decoded at a reduced working resolution; a hand too small to get the network's
        full input resolution from it is cropped from the file decoded again for its own box (as with a
        box given). ``source``: that file, when ``image`` is its already decoded :class:`ScaledImage`."""
        if isinstance(image, (str, os.PathLike)):
            source = image
        if detections is None:
            scaled, detections = self.detect(image)
        else:
            scaled = self._as_scaled(image)
        out = []
        for det in detections:
            x, y, w, h = (float(v) for v in det.bbox)
            try:
                if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
                    raise ValueError(f"its landmark box has no area ({w:g} x {h:g} px)")
                H, W = scaled.original_hw
                own = scaled
                if source is not None and self.working_scale(W, H, det.bbox) < min(scaled.scale_xy) * 0.99:
                    own = self.load(source, det.bbox)  # a small hand in a large photo: more pixels for it
                pred = self(own, bbox=det.bbox, hand_side=hand_side or det.hand_side, K=K)
            except ValueError as e:
                why = f"{scaled.name}: the {det.hand_side} hand detected at x={x:.0f}, y={y:.0f}: {e}"
                if errors is None:
                    raise ValueError(why) from None
                errors.append(why)
                continue
            pred.extras["detection"] = det.to_json()
            out.append(pred)
        return out

    def track_video(
        self,
        frames,
        fps: float,
        hand_side: str | None = None,
        smooth: bool = False,
        bbox=None,
        whole_image: bool = False,
        errors: list[str] | None = None,
    ):
        """Reconstruct the hands of consecutive frames (an iterable of (H, W, 3) uint8 images), yielding a
        :class:`VideoFrame` per frame as it goes.

        Hands are found by :attr:`detector` on the first frame and then followed: the landmarks of one
        frame give the crop of the next; the palm detector runs again when a hand is lost and every
        :data:`REDETECT_EVERY` frames. A tracked hand keeps one side: that of its mean right-hand
        probability over its frames so far (the detector decides each frame on its own). ``smooth``: each tracked hand's vertices and joints go through a
        One-Euro filter at ``fps`` (:data:`SMOOTH_MIN_CUTOFF`, :data:`SMOOTH_BETA`), recorded in its
        ``extras["smoothed"]``. ``bbox`` (one box for every frame) or ``whole_image``: no detection, one
        hand per frame, side ``hand_side`` (default right). A detected hand that cannot be reconstructed is
        left out of its frame and described in ``errors`` (a list, when given)."""
        from handssca.detect.tracking import HandTracks, OneEuroFilter

        detect = bbox is None and not whole_image
        tracks, filters, sides = HandTracks(same_side=False), {}, {}
        errors = [] if errors is None else errors
        previous: list = []
        for k, frame in enumerate(frames):
            scaled = ScaledImage.full(to_rgb_uint8(frame), name=f"frame {k}")
            if detect:
                previous = self.detector.track(scaled.pixels, previous, redetect=k % REDETECT_EVERY == 0)
                found = tracks.update([d.bbox for d in previous], [d.hand_side for d in previous])
                hands, ids = [], []
                for tid, det in zip(found, previous):
                    # a hand keeps one side along its track: the side of its mean right-hand probability
                    p_right = det.side_score if det.hand_side == "right" else 1.0 - det.side_score
                    votes = sides.setdefault(tid, [])
                    votes.append(p_right)
                    det.hand_side = "right" if np.mean(votes) >= 0.5 else "left"
                    got = self.reconstruct_all(scaled, hand_side=hand_side, detections=[det], errors=errors)
                    hands += got
                    ids += [tid] * len(got)
            else:
                hands, ids = [self(scaled, bbox=bbox, hand_side=hand_side or "right")], [1]
            for tid, hand in zip(ids, hands):
                hand.extras["track_id"] = tid
                if smooth:
                    f = filters.setdefault(
                        tid,
                        tuple(OneEuroFilter(fps, SMOOTH_MIN_CUTOFF, SMOOTH_BETA) for _ in range(2)),
                    )
                    hand.vertices, hand.joints = f[0](hand.vertices), f[1](hand.joints)
                    hand.joints_2d = project(hand.joints, hand.K)
                    hand.extras["smoothed"] = (
                        f"vertices, joints_3d_m and joints_2d_px: One-Euro filter (min_cutoff {SMOOTH_MIN_CUTOFF:g} "
                        f"Hz, beta {SMOOTH_BETA:g} /m) over this hand's frames; the MANO parameters are this frame's own"
                    )
            filters = {tid: f for tid, f in filters.items() if tid in ids}  # a lost hand starts afresh
            yield VideoFrame(k, scaled.pixels, hands, ids)

    def _as_scaled(self, image) -> ScaledImage:
        if isinstance(image, ScaledImage):
            return image
        if isinstance(image, (str, os.PathLike)):
            return self.load(image)
        return ScaledImage.full(to_rgb_uint8(image))

    def working_scale(self, width: int, height: int, bbox=None) -> float:
        """Original pixels per working pixel for a width x height image: the image is reduced until its
        longer side is ``max_working_side``, but never so far that the hand's crop (the box expanded x1.5,
        or the whole image) would get fewer pixels than the network's input. >= 1."""
        longest = float(max(width, height))
        side = longest if bbox is None else max(float(bbox[2]), float(bbox[3])) * 1.5
        return max(1.0, min(longest / self.max_working_side, side / self.input_size))

    def load(self, path: str | os.PathLike, bbox=None) -> ScaledImage:
        """Decode an image file at :meth:`working_scale` (JPEGs at 1/2-1/8 size directly); the box, when
        given, is checked against the header's size before any decoding."""
        box = None if bbox is None else check_bbox(bbox)

        def scale(width: int, height: int) -> float:
            if box is not None:
                check_bbox_overlaps(box, width, height, str(path))
            return self.working_scale(width, height, box)

        return load_image(path, scale)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, hand_model: str | None = None, device: str | torch.device | None = None
    ) -> HandReconstructor:
        from handssca.model.checkpoint import load_model

        dev = resolve_device(device)
        model = load_model(path, hand_model).to(dev)
        return cls(TorchRunner(model, dev), model.hand.faces, model.config.input_size, device=dev)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, hand_model: str | None = None) -> HandReconstructor:
        from handssca.export import OnnxRunner

        try:
            runner = OnnxRunner(path)
        except (ImportError, FileNotFoundError):
            raise
        except Exception as e:  # onnxruntime's own errors (InvalidProtobuf, Fail ...) are not ValueErrors
            if isinstance(e, ValueError) and str(path) in str(e):
                raise
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            why = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
            raise ValueError(f"{path}: not a handssca ONNX model that onnxruntime can load ({why})") from None
        from handssca.hand import HandModel

        faces = HandModel.load(hand_model).faces if runner.faces is None else runner.faces
        return cls(runner, faces, runner.input_size)

    def __call__(
        self,
        image: str | os.PathLike | np.ndarray | ScaledImage,
        bbox: tuple[float, float, float, float] | np.ndarray | None = None,
        hand_side: str = "right",
        K: np.ndarray | None = None,
    ) -> HandPrediction:
        """Reconstruct one hand. ``bbox`` (x, y, w, h) is a hand box in pixels (expanded x1.5 and made
        square, as at training); None uses the whole image (:meth:`reconstruct_all` finds the hands
        instead). ``K`` defaults to :func:`default_intrinsics`.

        ``image``: a file (decoded at :meth:`working_scale`), an (H, W[, C]) array, or a
        :class:`~handssca.io_images.ScaledImage`. Box, ``K`` and the returned 2D joints, box, camera and
        image size are always in the original image's pixels. Raises ValueError for a box that is not
        finite, has no size, or lies outside the image (:class:`BoxOutsideImageError`).
        """
        if hand_side not in ("right", "left"):
            raise ValueError(f"hand_side: expected 'right' or 'left'; got {hand_side!r}")
        raw = None if bbox is None else check_bbox(bbox)
        scaled = self.load(image, raw) if isinstance(image, (str, os.PathLike)) else self._as_scaled(image)
        h, w = scaled.original_hw
        K_assumed = K is None
        K = default_intrinsics(w, h) if K is None else np.asarray(K, dtype=np.float64)
        if raw is None:
            box = square_bbox(whole_image_box(w, h))
        else:
            check_bbox_overlaps(raw, w, h, scaled.name)
            box = square_bbox(raw, expansion=1.5)
        # everything up to the network in the working image's pixels
        img = scaled.pixels
        wh, ww = img.shape[:2]
        work, Kw, boxw = img, scaled.K_to_working(K), scaled.box_to_working(box)
        flip = hand_side == "left"
        if flip:  # mirror the image (u -> W - 1 - u): a left hand becomes a right hand
            work = img[:, ::-1]  # a view: no copy of the working image
            Kw, boxw = mirror_intrinsics(Kw, ww), mirror_box(boxw, ww)
        S = self.input_size
        M = crop_affine(boxw, S)
        crop = self._warp_region(work, M, boxw, S)
        out = self.runner(crop.transpose(2, 0, 1)[None].astype(np.float32))
        Kc = crop_intrinsics(Kw, M, 0.0)
        uv = joints_img_to_pixels(out["joints_img"][0].astype(np.float64), S)
        t, placement = place_in_crop(out["joints"][0], out["joints_img"][0], Kc, S)
        verts, joints = out["vertices"][0] + t, out["joints"][0] + t
        reproj = float(np.linalg.norm(project(joints, Kc) - uv, axis=1).mean())
        pose, faces = out["pose_aa"][0].astype(np.float64), self.faces
        if flip:  # back to the left hand in the original camera: x -> -x, faces re-wound, pose mirrored
            verts, joints, t = mirror_points(verts), mirror_points(joints), mirror_points(t)
            faces = mirror_faces(self.faces)
            pose = mirror_pose(pose)
        return HandPrediction(
            vertices=verts,
            joints=joints,
            joints_2d=project(joints, K),
            faces=np.asarray(faces),
            pose=pose,
            betas=out["betas"][0].astype(np.float64),
            transl=np.asarray(t, dtype=np.float64),
            K=K,
            K_assumed=K_assumed,
            bbox=box,
            hand_side=hand_side,
            image_size=(int(h), int(w)),
            extras={
                "crop_reprojection_error_px": reproj,
                "placement": placement,
                "working_scale": float(max(scaled.scale_xy)),
            },
        )

    @staticmethod
    def _warp_region(image: np.ndarray, M: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
        """``warp_image`` of a uint8 image by M, converting to float only the part the square crop samples."""
        hi, wi = image.shape[:2]
        x0, y0 = max(0, int(np.floor(box[0])) - 2), max(0, int(np.floor(box[1])) - 2)
        x1, y1 = min(wi, int(np.ceil(box[0] + box[2])) + 3), min(hi, int(np.ceil(box[1] + box[3])) + 3)
        if x1 <= x0 or y1 <= y0:
            return np.zeros((size, size, 3), np.float32)
        region = image[y0:y1, x0:x1].astype(np.float32)
        region *= np.float32(1.0 / 255.0)
        Mr = M.copy()
        Mr[:, 2] += M[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixel p is image pixel p + (x0, y0)
        return warp_image(region, Mr, size)
