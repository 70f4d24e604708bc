"""The user-facing API: images in, hand meshes in the camera frame out.

from handssca.inference import HandReconstructor
rec = HandReconstructor.from_checkpoint("runs/demo/best.pt")
hand = rec("photo.jpg", bbox=(x, y, w, h), hand_side="left")
hand.vertices, hand.joints, hand.joints_2d   # metres (camera frame) and pixels
hands = rec.reconstruct_all("photo.jpg")     # every hand the bundled detector finds, each with its side

Every hand is refined by default: the hand model is fitted to the detector's 21 landmarks (its 2D keypoints
through the camera and its 3D landmarks; :mod:`handssca.fit`), starting from the network's prediction;
``refine=None`` gives the network's own output. A hand given by a box has the landmark network run on it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np
import torch

from handssca.data.transforms import bbox_from_points, crop_affine, crop_intrinsics, square_bbox, warp_region
from handssca.environment import cpu_has_bf16, resolve_device
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
from handssca.io.images import ScaledImage, load_image, to_rgb_uint8
from handssca.messages import described, first_line
from handssca.model.runner import NetworkRunner, TorchRunner
from handssca.results import HandPrediction, VideoFrame

log = logging.getLogger(__name__)

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


def check_hand_side(hand_side: str | None, allow_none: bool = False) -> str | None:
    """``hand_side`` checked: "right" or "left" (or None, "the detected side", when ``allow_none``)."""
    if hand_side in ("right", "left") or (allow_none and hand_side is None):
        return hand_side
    raise ValueError(f"hand_side (--hand): expected 'right' or 'left'; got {hand_side!r}")


def check_refine(refine) -> str | None:
    """``refine`` checked against :data:`REFINE_MODES` ("none" is None)."""
    refine = None if refine in (None, "none") else refine
    if refine not in REFINE_MODES:
        raise ValueError(f"refine (--refine): expected 'landmarks' or 'none'; got {refine!r}")
    return refine


@dataclass
class HandMesh:
    """A posed hand in a camera frame: ``vertices`` (V, 3) and ``joints`` (21, 3) metres, ``transl`` (3)
    metres, ``pose`` (48) axis-angle, ``betas`` (10), ``faces`` (F, 3) wound for its side."""

    vertices: np.ndarray
    joints: np.ndarray
    transl: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    faces: np.ndarray


def unmirror(hand: HandMesh, flip: bool) -> HandMesh:
    """The right hand of a mirrored picture (a left hand made right, :class:`RightHandCrop`) back in the
    original camera, a left hand: points x -> -x, faces re-wound, pose mirrored. ``hand`` itself when not
    ``flip``."""
    if not flip:
        return hand
    return HandMesh(
        vertices=mirror_points(hand.vertices),
        joints=mirror_points(hand.joints),
        transl=mirror_points(hand.transl),
        pose=mirror_pose(hand.pose),
        betas=hand.betas,
        faces=mirror_faces(hand.faces),
    )


@dataclass
class RightHandCrop:
    """The network's input for one hand, always a right hand: ``pixels`` (S, S, 3) float32 in [0, 1],
    ``M`` (2, 3) working pixels -> crop pixels, ``Kw`` and ``Kc`` (3, 3) the camera of the (mirrored when
    ``flip``) working image and of the crop, ``flip``: a left hand mirrored, ``width`` of the working image."""

    pixels: np.ndarray
    M: np.ndarray
    Kw: np.ndarray
    Kc: np.ndarray
    flip: bool
    width: int


#: How a hand's mesh is made: ``"landmarks"`` fits the hand model to the detector's landmarks (the
#: default), None keeps the network's output.
REFINE_MODES = ("landmarks", None)

#: Videos: the palm detector also runs every this many frames, to find hands that came into view while
#: others were tracked (it always runs when a tracked hand is lost).
REDETECT_EVERY = 10

#: One-Euro filter of ``track_video(smooth=True)``: cutoff at rest (Hz) and speed coefficient (per metre).
SMOOTH_MIN_CUTOFF, SMOOTH_BETA = 1.0, 20.0
#: The speed coefficient (per radian) for a fitted hand's pose and shape parameters.
SMOOTH_BETA_RAD = 1.0


#: A detected hand whose side probability is below this is fitted as both sides (``reconstruct_all``): on
#: photo-like renders, 6 of 161 hands were given the wrong side, 5 of them below 0.9.
SIDE_CHECK_BELOW = 0.9


def _side_uncertain(pred: HandPrediction, det) -> bool:
    """Whether the detector was unsure of ``det``'s side and ``pred``'s landmark fit was used."""
    fit = pred.extras.get("landmark_fit")
    return bool(fit) and fit["used"] and float(getattr(det, "side_score", 1.0)) < SIDE_CHECK_BELOW


def _fit_rejected(pred: HandPrediction) -> bool:
    """Whether ``pred``'s landmark fit ran and was not used (rejected for its residuals or a failure; not
    for want of landmarks or of the hand model's file)."""
    fit = pred.extras.get("landmark_fit")
    return bool(fit) and not fit["used"] and "residual_2d_px_network" in fit


class HandReconstructor:
    """Image + optional box and hand side -> :class:`HandPrediction`. Left hands are mirrored in and out.

    ``runner``: the network (a :class:`~handssca.model.runner.NetworkRunner`: :class:`TorchRunner` or
    :class:`~handssca.export.OnnxRunner`). ``hand_model``: the identity of the hand model the runner's
    meshes come from, written into every prediction (default: the runner's)."""

    def __init__(
        self,
        runner: NetworkRunner,
        faces: np.ndarray,
        input_size: int,
        max_working_side: int = MAX_WORKING_SIDE,
        detector=None,
        device: str | torch.device | None = "cpu",
        hand_model: dict | None = None,
        hand=None,
        refine: str | None = "landmarks",
        fit_weights=None,
    ) -> None:
        """``hand``: the right :class:`~handssca.hand.HandModel` the network drives (needed to refine;
        the runner's when it has one); ``refine``: the default of :meth:`__call__`'s (:data:`REFINE_MODES`);
        ``fit_weights``: :class:`~handssca.fit.FitWeights` of the landmark fit."""
        self.runner, self.faces, self.input_size = runner, np.asarray(faces), int(input_size)
        self.hand_model = hand_model if hand_model is not None else runner.hand_model
        self.max_working_side = int(max_working_side)
        self._detector, self._detector_device = detector, device
        self.hand = hand if hand is not None else runner.hand
        self.refine = check_refine(refine)
        self.fit_weights = fit_weights
        self._fitter = None
        self._lock = threading.RLock()

    @property
    def detector(self):
        """The :class:`~handssca.detect.HandDetector` used when no box is given (made on first use, on
        the network's device; once, whichever threads ask for it first)."""
        with self._lock:
            if self._detector is None:
                from handssca.detect import HandDetector

                self._detector = HandDetector(device=self._detector_device)
            return self._detector

    @property
    def fitter(self):
        """The landmark fit's :class:`~handssca.fit.FitModel` of :attr:`hand` (made on first use) and the
        hand layer in float64 that poses its meshes."""
        with self._lock:
            if self._fitter is None:
                import copy

                from handssca.fit import FitModel

                if self.hand is None:
                    raise ValueError("refine='landmarks' needs the hand model the network drives (hand=...)")
                mesh = copy.deepcopy(self.hand).to(device="cpu", dtype=torch.float64)
                self._fitter = (FitModel.from_hand(mesh), mesh)
            return self._fitter

    def landmarks_in_box(self, scaled: ScaledImage, box: np.ndarray):
        """The landmark network on a hand box (x, y, w, h, original pixels) of the image: a
        :class:`~handssca.detect.HandDetection` in original pixels, or None when it sees no hand
        (:meth:`~handssca.detect.HandDetector.landmarks_in_box`)."""
        hand = self.detector.landmarks_in_box(scaled.pixels, scaled.box_to_working(np.asarray(box, dtype=float)))
        if hand is None:
            return None
        if scaled.scale_xy != (1.0, 1.0):
            hand.keypoints_2d = scaled.to_original(hand.keypoints_2d)
            hand.bbox = bbox_from_points(hand.keypoints_2d, expansion=1.0)
            hand.rect = None
        return hand

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
        refine: str | None | object = ...,
        previous: list | None = None,
        side_check: bool = True,
    ) -> list[HandPrediction]:
        """Find every hand with :attr:`detector` and reconstruct each in its detected box with its
        detected side (``hand_side`` overrides the side for all). ``detections``: hands found already
        (e.g. tracked in a video), in the original image's pixels. [] when no hand is found. Each
        prediction's ``extras["detection"]`` holds the detection (box, score, side, 21 keypoints).

        A hand that cannot be reconstructed (a degenerate detected box) raises ValueError naming it, or,
        when ``errors`` is a list, is left out and described there so that the other hands are kept.

        A large file is decoded at a reduced working resolution; a hand too small to get the network's
        full input resolution from it is cropped from the file decoded again for its own box (as with a
        box given). ``source``: that file, when ``image`` is its already decoded :class:`ScaledImage`.
        ``refine``: as :meth:`__call__` (each hand fitted to its own landmarks); ``previous``: per detection,
        that hand's prediction in the frame before (video), or None. ``side_check``: a hand whose fit is
        rejected, or whose side the detector is unsure of (:data:`SIDE_CHECK_BELOW`), is fitted as the other
        side too, and the side whose fit ends nearer its keypoints is taken (``extras["side_check"]``;
        never when ``hand_side`` is given; it costs one more network run and fit for such a hand)."""
        if isinstance(image, (str, os.PathLike)):
            source = image
        if detections is None:
            scaled, detections = self.detect(image)
        else:
            scaled = self._as_scaled(image)
        out = []
        previous = [None] * len(detections) if previous is None else previous
        if len(previous) != len(detections):
            raise ValueError(f"previous: expected one entry per detection ({len(detections)}); got {len(previous)}")
        for det, before in zip(detections, previous):
            x, y, w, h = (float(v) for v in det.bbox)
            try:
                if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
                    raise ValueError(f"its landmark box has no area ({w:g} x {h:g} px)")
                H, W = scaled.original_hw
                own = scaled
                if source is not None and self.working_scale(W, H, det.bbox) < min(scaled.scale_xy) * 0.99:
                    own = self.load(source, det.bbox)  # a small hand in a large photo: more pixels for it
                pred = self(
                    own,
                    bbox=det.bbox,
                    hand_side=hand_side or det.hand_side,
                    K=K,
                    detection=det,
                    refine=refine,
                    previous=before,
                )
                if side_check and hand_side is None and (_fit_rejected(pred) or _side_uncertain(pred, det)):
                    pred = self._other_side(pred, own, det, K, refine, before)
            except ValueError as e:
                why = f"{scaled.name}: the {det.hand_side} hand detected at x={x:.0f}, y={y:.0f}: {e}"
                if errors is None:
                    raise ValueError(why) from None
                errors.append(why)
                continue
            pred.extras["detection"] = det.to_json()
            out.append(pred)
        return out

    def _other_side(self, pred: HandPrediction, image: ScaledImage, det, K, refine, before) -> HandPrediction:
        """A detected hand fitted again as the other side, when its fit on the detected side was rejected or
        the detector was unsure of the side (:data:`SIDE_CHECK_BELOW`): a hand's landmarks fitted as the
        wrong side end farther from them (or are rejected). The other side's prediction is taken when its
        fit is used and the detected side's was not, or ends nearer the 2D keypoints. Either way the
        prediction's ``extras["side_check"]`` says: ``side`` (the one taken), ``from`` ("landmark_fit" when it
        is not the detector's, else "detector"), ``detected`` and ``side_score`` (the detector's), and per
        side ``residual_2d_px`` (None where that side's fit was not used) and ``reason``."""
        other = "left" if pred.hand_side == "right" else "right"
        try:
            alt = self(image, bbox=det.bbox, hand_side=other, K=K, detection=det, refine=refine, previous=before)
        except ValueError as e:  # the other side cannot be reconstructed: the detected side's stays
            alt, why_not = None, first_line(e)
        mine = pred.extras["landmark_fit"]
        theirs = alt.extras["landmark_fit"] if alt is not None else {"used": False, "reason": why_not}
        residual = {
            pred.hand_side: mine["residual_2d_px"] if mine["used"] else None,
            other: theirs["residual_2d_px"] if theirs["used"] else None,
        }
        take = theirs["used"] and (not mine["used"] or residual[other] < residual[pred.hand_side])
        if take:
            reason = (
                f"the {pred.hand_side} side's fit was not used ({mine['reason']})"
                if not mine["used"]
                else f"the {other} side's fit ends nearer the keypoints ({residual[other]:.2f} px against "
                f"{residual[pred.hand_side]:.2f} px)"
            )
        else:
            reason = (
                f"the {other} side's fit was not used ({theirs['reason']})"
                if not theirs["used"]
                else f"the {pred.hand_side} side's fit ends nearer the keypoints ({residual[pred.hand_side]:.2f} px "
                f"against {residual[other]:.2f} px)"
            )
        chosen = alt if take else pred
        chosen.extras["side_check"] = {
            "side": chosen.hand_side,
            "from": "landmark_fit" if take else "detector",
            "detected": pred.hand_side,
            "side_score": float(getattr(det, "side_score", 1.0)),
            "residual_2d_px": residual,
            "reason": reason,
        }
        return chosen

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
        ``extras["smoothed"]``; a hand fitted to its landmarks has its parameters filtered instead and its
        mesh posed from them, and each fit is pulled towards the hand's fit in the frame before. ``bbox`` (one box for every frame) or ``whole_image``: no detection, one
        hand per frame, side ``hand_side`` (default right). A detected hand that cannot be reconstructed is
        left out of its frame and described in ``errors`` (a list, when given)."""
        from handssca.detect.tracking import HandTracks

        detect = bbox is None and not whole_image
        tracks, filters, sides, last = HandTracks(same_side=False), {}, {}, {}
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
                    mean = float(np.mean(votes))
                    voted = dataclasses.replace(  # the detection fed back to the tracker keeps its own side
                        det, hand_side="right" if mean >= 0.5 else "left", side_score=max(mean, 1.0 - mean)
                    )
                    got = self.reconstruct_all(  # the track's vote decides the side: no side check
                        scaled,
                        hand_side=hand_side,
                        detections=[voted],
                        errors=errors,
                        previous=[last.get(tid)],
                        side_check=False,
                    )
                    hands += got
                    ids += [tid] * len(got)
            else:
                hands, ids = [self(scaled, bbox=bbox, hand_side=hand_side or "right", previous=last.get(1))], [1]
            for tid, hand in zip(ids, hands):
                hand.extras["track_id"] = tid
                if smooth:
                    self._smooth(hand, filters.setdefault(tid, {}), fps)
            last = dict(zip(ids, hands))  # a lost hand starts afresh
            filters = {tid: f for tid, f in filters.items() if tid in ids}
            yield VideoFrame(k, scaled.pixels, hands, ids)

    def _smooth(self, hand: HandPrediction, filters: dict, fps: float) -> None:
        """One-Euro filters over a tracked hand's frames, in place: a fitted hand's parameters (then its mesh
        posed again), a network's hand's vertices and joints. The filters start again when the hand changes
        between fitted and network meshes or changes side (their values are not comparable)."""
        from handssca.detect.tracking import OneEuroFilter
        from handssca.fit.keypoints import nearest_rotvec

        fitted = hand.extras.get("mesh_source") == "landmark_fit" and hand.fit_state is not None
        kind = ("fit", hand.fit_state[0]) if fitted else ("network", hand.hand_side)
        if filters.get("kind") != kind:
            filters.clear()
            filters["kind"] = kind

        def f(name: str, beta: float) -> OneEuroFilter:
            return filters.setdefault(name, OneEuroFilter(fps, SMOOTH_MIN_CUTOFF, beta))

        if fitted:
            flip, state = hand.fit_state
            params = np.concatenate([state.pose[0], state.betas[0]])
            last = f("pose", SMOOTH_BETA_RAD).x
            if last is not None:  # the global rotation in the representation nearest the filter's
                params[:3] = nearest_rotvec(params[:3], last[:3])
            pose = f("pose", SMOOTH_BETA_RAD)(params)
            transl = f("transl", SMOOTH_BETA)(state.transl[0])
            _, mesh = self.fitter
            with torch.no_grad():
                posed = mesh(
                    global_orient=torch.from_numpy(pose[None, :3]),
                    hand_pose=torch.from_numpy(pose[None, 3:48]),
                    betas=torch.from_numpy(pose[None, 48:]),
                    transl=torch.from_numpy(transl[None]),
                )
            fitted = HandMesh(
                posed["vertices"][0].numpy(), posed["joints"][0].numpy(), transl, pose[:48], pose[48:], self.faces
            )
            sided = unmirror(fitted, flip)
            hand.vertices, hand.joints, hand.transl = sided.vertices, sided.joints, sided.transl
            hand.pose, hand.betas = sided.pose, sided.betas
            what = (
                f"the fitted pose and shape (beta {SMOOTH_BETA_RAD:g} /rad) and translation (beta {SMOOTH_BETA:g} /m)"
                f", mesh and joints posed from them"
            )
        else:
            hand.vertices, hand.joints = (
                f("vertices", SMOOTH_BETA)(hand.vertices),
                f("joints", SMOOTH_BETA)(hand.joints),
            )
            what = f"vertices, joints_3d_m and joints_2d_px (beta {SMOOTH_BETA:g} /m); the MANO parameters are this frame's own"
        hand.joints_2d = project(hand.joints, hand.K)
        hand.extras["smoothed"] = (
            f"One-Euro filter (min_cutoff {SMOOTH_MIN_CUTOFF:g} Hz) over this hand's frames: {what}"
        )

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
        cls,
        path: str | os.PathLike,
        hand_model: str | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ) -> HandReconstructor:
        """The network of a checkpoint with the hand model it was trained with. ``hand_model``: that
        model's MANO file (checked against the checkpoint's record); needed for a MANO-trained
        checkpoint unless the file is at the path recorded at training (see
        :func:`~handssca.model.checkpoint.model_from_checkpoint`). ``precision``: "auto" (bf16 on a CPU
        that computes in bf16, else float32), "float32" or "bfloat16": the network runs as
        :func:`~handssca.model.inference_copy.inference_copy` makes it (BatchNorm folded, channels-last)."""
        from handssca.model.checkpoint import load_model
        from handssca.model.inference_copy import inference_copy, resolve_precision

        dev = resolve_device(device)
        dtype = resolve_precision(precision, dev, cpu_has_bf16())
        if precision == "bfloat16" and dev.type == "cpu" and not cpu_has_bf16():
            log.warning("precision bfloat16: this CPU has no native bf16 arithmetic; it is emulated (slower)")
        model = inference_copy(load_model(path, hand_model).to(dev), dtype)
        runner = TorchRunner(model, dev)
        return cls(runner, model.hand.faces, model.config.input_size, device=dev, hand_model=runner.hand_model)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike, hand_model: str | None = None) -> HandReconstructor:
        """An exported ONNX model (its graph holds the hand model it was exported with). ``hand_model``:
        optional; a MANO file given must be the one the model records (ValueError naming both
        otherwise). For a model exported without that record, it only supplies faces missing from
        the metadata."""
        from handssca.export import OnnxRunner

        try:
            runner = OnnxRunner(path)
        except (ImportError, FileNotFoundError):
            raise
        except Exception as e:  # onnxruntime's own errors (InvalidProtobuf, Fail ...) are not ValueErrors
            if isinstance(e, ValueError) and str(path) in str(e):
                raise
            why = described(e)
            raise ValueError(f"{path}: not a handssca ONNX model that onnxruntime can load ({why})") from None
        from handssca.hand import HandModel
        from handssca.hand.identity import load_identified

        # the landmark fit needs the model's arrays: the file given (checked against the record), or the
        # default hand when the export is the default hand's
        recorded = runner.hand_model
        hand = None  # a MANO-trained export without its file: no landmark fit (said in each JSON)
        if hand_model is not None and recorded is not None:
            hand = load_identified(recorded, hand_model, None, str(path))[0]  # raises unless the same model
        elif hand_model is not None:
            hand = HandModel.load(hand_model)
        elif recorded is not None and recorded.get("default"):
            hand = HandModel.default()
        elif recorded is None and runner.faces is not None:  # an older export: the default hand's only if its faces are
            default = HandModel.default()
            if np.array_equal(np.asarray(runner.faces), default.faces):
                hand = default
        faces = (hand.faces if hand is not None else None) if runner.faces is None else runner.faces
        if faces is None:
            raise ValueError(f"{path}: this export has no faces; give its MANO file (--hand-model)")
        return cls(runner, faces, runner.input_size, hand_model=runner.hand_model, hand=hand)

    def __call__(
        self,
        image: str | os.PathLike | np.ndarray | ScaledImage,
        bbox: tuple[float, float, float, float] | np.ndarray | None = None,
        hand_side: str = "right",
        K: np.ndarray | None = None,
        detection=None,
        refine: str | None | object = ...,
        previous: HandPrediction | None = None,
    ) -> HandPrediction:
        """Reconstruct one hand. ``bbox`` (x, y, w, h) is a hand box in pixels (expanded x1.5 and made
        square, as at training); None uses the whole image (:meth:`reconstruct_all` finds the hands
        instead). ``K`` defaults to :func:`default_intrinsics`.

        ``refine`` (default: the reconstructor's): ``"landmarks"`` fits the hand model to the hand's 21
        landmarks (``detection``, a :class:`~handssca.detect.HandDetection` in original pixels; without
        one the landmark network is run on the box), starting from and pulled weakly towards the network's
        output; a fit that fails or ends far from the landmarks (:func:`handssca.fit.usable`) falls back to
        the network's mesh, and ``extras["mesh_source"]`` and ``extras["landmark_fit"]`` say which and why.
        None: the network's output. ``previous``: this hand's prediction in the frame before (video): its
        fit pulls this one (``FitWeights.temporal_m``).

        ``image``: a file (decoded at :meth:`working_scale`), an (H, W[, C]) array, or a
        :class:`~handssca.io.images.ScaledImage`. Box, ``K`` and the returned 2D joints, box, camera and
        image size are always in the original image's pixels. Raises ValueError for a box that is not
        finite, has no size, or lies outside the image (:class:`BoxOutsideImageError`).
        """
        check_hand_side(hand_side)
        refine = self.refine if refine is ... else check_refine(refine)
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
        if refine and detection is None and self.hand is not None:
            detection = self.landmarks_in_box(scaled, whole_image_box(w, h) if raw is None else raw)
        crop = self._right_hand_crop(scaled, K, box, hand_side == "left")
        out = self.runner(crop.pixels.transpose(2, 0, 1)[None].astype(np.float32))
        hand = self._place(out, crop)
        extras = {
            "crop_reprojection_error_px": hand.pop("reprojection_error_px"),
            "placement": hand.pop("placement"),
            "working_scale": float(max(scaled.scale_xy)),
            "mesh_source": "network",
        }
        fit_state = None
        if refine:
            fitted, extras["landmark_fit"], fit_state = self._fit(hand, crop, scaled, detection, previous)
            if fitted is not None:
                hand, extras["mesh_source"] = fitted, "landmark_fit"
        sided = unmirror(HandMesh(**hand, faces=self.faces), crop.flip)
        return HandPrediction(
            vertices=sided.vertices,
            joints=sided.joints,
            joints_2d=project(sided.joints, K),
            faces=np.asarray(sided.faces),
            pose=sided.pose,
            betas=sided.betas,
            transl=np.asarray(sided.transl, dtype=np.float64),
            K=K,
            K_assumed=K_assumed,
            bbox=box,
            hand_side=hand_side,
            image_size=(int(h), int(w)),
            hand_model=self.hand_model,
            extras=extras,
            fit_state=fit_state,
        )

    def _right_hand_crop(self, scaled: ScaledImage, K: np.ndarray, box: np.ndarray, flip: bool) -> RightHandCrop:
        """The network's square crop of ``box`` (original pixels) from the working image, a left hand's
        mirrored so that it is a right hand (u -> W - 1 - u; a view, no copy of the image)."""
        img = scaled.pixels
        ww = img.shape[1]
        work, Kw, boxw = img, scaled.K_to_working(K), scaled.box_to_working(box)
        if flip:
            work = img[:, ::-1]
            Kw, boxw = mirror_intrinsics(Kw, ww), mirror_box(boxw, ww)
        S = self.input_size
        M = crop_affine(boxw, S)
        pixels = warp_region(work, M, boxw[:2], boxw[:2] + boxw[2:], S)
        return RightHandCrop(pixels, M, Kw, crop_intrinsics(Kw, M, 0.0), flip, ww)

    def _place(self, out: dict, crop: RightHandCrop) -> dict:
        """The network's right hand in the crop's camera frame: its mesh and joints moved by the
        translation that puts its joints on its own 2D joints (:func:`~handssca.geometry.place_in_crop`)."""
        S = self.input_size
        uv = joints_img_to_pixels(out["joints_img"][0].astype(np.float64), S)
        t, placement = place_in_crop(out["joints"][0], out["joints_img"][0], crop.Kc, S)
        joints = out["joints"][0] + t
        return {
            "vertices": out["vertices"][0] + t,
            "joints": joints,
            "transl": np.asarray(t, dtype=np.float64),
            "pose": out["pose_aa"][0].astype(np.float64),
            "betas": out["betas"][0].astype(np.float64),
            "reprojection_error_px": float(np.linalg.norm(project(joints, crop.Kc) - uv, axis=1).mean()),
            "placement": placement,
        }

    def _fit(self, net: dict, crop: RightHandCrop, scaled: ScaledImage, detection, previous):
        """(the fitted hand as :meth:`_place` gives one, or None; what the fit did (JSON); the state a
        next frame's fit starts from) for the network's right hand ``net`` and the detection's landmarks."""
        from handssca.fit import FitInit, fit_hand, usable

        if self.hand is None:
            why = "the hand model's file is needed to fit it to the landmarks (--hand-model)"
            return None, {"used": False, "reason": why}, None
        if detection is None or getattr(detection, "keypoints_3d", None) is None:
            return None, {"used": False, "reason": "no landmarks (the landmark network saw no hand in the box)"}, None
        model, mesh = self.fitter
        if mesh.num_vertices != len(net["vertices"]):
            why = f"the hand model ({mesh.num_vertices} vertices) is not the network's ({len(net['vertices'])})"
            return None, {"used": False, "reason": why}, None
        kp2d = scaled.to_working(np.asarray(detection.keypoints_2d, dtype=np.float64))
        kp3d = np.asarray(detection.keypoints_3d, dtype=np.float64)
        if crop.flip:  # the mirrored picture's landmarks
            kp2d = kp2d.copy()
            kp2d[:, 0] = crop.width - 1 - kp2d[:, 0]
            kp3d = mirror_points(kp3d)
        init = FitInit(net["pose"][None], net["betas"][None], net["transl"][None])
        prev = None
        if previous is not None and previous.fit_state is not None and previous.fit_state[0] == crop.flip:
            prev = previous.fit_state[1]
        res = fit_hand(model, kp2d[None], crop.Kw, kp3d[None], init=init, weights=self.fit_weights, previous=prev)
        px = float(max(scaled.scale_xy))  # original pixels per working pixel
        before = float(np.linalg.norm(project(net["joints"], crop.Kw) - kp2d, axis=1).mean()) * px
        info = {
            "used": False,
            "reason": None,
            "residual_2d_px_network": before,
            "residual_2d_px": float(res.residual_2d_px[0]) * px,
            "residual_3d_mm": float(res.residual_3d_m[0]) * 1000.0,
            "landmark_scale": float(res.scale[0]),
            "iterations": int(res.iterations[0]),
            "converged": bool(res.converged[0]),
            "temporal": prev is not None,
            "landmark_table": model.table.source,
        }
        ok, why = usable(res, kp2d[None], px)
        if not ok[0]:
            info["reason"] = f"{why[0]}; the network's mesh is kept"
            if not res.valid[0]:
                for key in ("residual_2d_px", "residual_3d_mm", "landmark_scale"):
                    info[key] = None
            return None, info, None
        with torch.no_grad():
            posed = mesh(
                global_orient=torch.from_numpy(res.pose[:, :3]),
                hand_pose=torch.from_numpy(res.pose[:, 3:]),
                betas=torch.from_numpy(res.betas),
                transl=torch.from_numpy(res.transl),
            )
        info["used"] = True
        fitted = {
            "vertices": posed["vertices"][0].numpy(),
            "joints": posed["joints"][0].numpy(),
            "transl": res.transl[0].copy(),
            "pose": res.pose[0].copy(),
            "betas": res.betas[0].copy(),
        }
        state = (crop.flip, FitInit(res.pose.copy(), res.betas.copy(), res.transl.copy()))
        return fitted, info, state
