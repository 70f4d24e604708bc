"""Find every hand in an image: MediaPipe's palm detector, then its hand-landmark network per palm.

    from handssca.detect import HandDetector
    detector = HandDetector()
    for hand in detector(image):            # (H, W, 3) uint8 RGB
        hand.bbox, hand.hand_side, hand.score, hand.keypoints_2d   # pixels, "left"/"right", (21, 2)
        hand.keypoints_3d                                          # (21, 3) metres, hand-centred, image axes

Both networks are Google's Apache-2.0 MediaPipe models (``third_party/mediapipe``), converted to
``assets/hand_detector.npz`` and run in PyTorch (:class:`~handssca.detect.graph.TfliteGraph`); nothing is
downloaded. The steps are MediaPipe's ``hand_landmark_tracking_cpu`` graph: the image letterboxed into
192 x 192 -> palms (:mod:`~handssca.detect.palms`) -> one rotated 224 x 224 crop per palm
(:mod:`~handssca.detect.rects`) -> 21 landmarks, a hand-presence score and a handedness score.

**3D landmarks.** The landmark network also gives 21 "world" landmarks: metres, about the hand's
centre, in its crop's axes. They are turned into the image's axes by the crop's rotation as MediaPipe's
``WorldLandmarkProjectionCalculator`` does (x, y rotated, z unchanged): ``keypoints_3d``, x right, y down,
z away from the camera, like the OpenCV camera frame but without perspective (their scale is the
network's estimate of a hand's size, not measured).

**Hand side.** MediaPipe's handedness output assumes a mirrored (selfie) picture. ``hand_side`` here is
the side of the hand as it is seen in the image given, unmirrored: a photo of a right hand is "right".
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
import torch

from handssca.data.transforms import bbox_from_points
from handssca.detect.graph import TfliteGraph
from handssca.detect.palms import PALM_INPUT, box_iou_xywh, decode_palms, ssd_anchors, weighted_nms
from handssca.detect.rects import (
    RotatedRect,
    apply_inverse,
    crop_matrix,
    rect_from_landmarks,
    rect_from_palm,
    warp_crop,
)
from handssca.detect.second_look import second_looks
from handssca.environment import resolve_device
from handssca.io.images import to_rgb_uint8
from handssca.results import HandDetection

#: The landmark network's input side, pixels.
LANDMARK_INPUT = 224


def world_to_image_axes(world: np.ndarray, rotation: float) -> np.ndarray:
    """(21, 3) world landmarks in a crop's axes -> the image's axes: x, y turned by the crop's clockwise
    ``rotation`` (radians, :class:`~handssca.detect.rects.RotatedRect`), z unchanged (MediaPipe's
    ``WorldLandmarkProjectionCalculator``)."""
    c, s = np.cos(rotation), np.sin(rotation)
    w = np.asarray(world, dtype=np.float64)
    return np.stack([c * w[:, 0] - s * w[:, 1], s * w[:, 0] + c * w[:, 1], w[:, 2]], axis=1)


def detector_file() -> str:
    """Path of the bundled ``hand_detector.npz``."""
    return str(resources.files("handssca") / "assets" / "hand_detector.npz")


class HandDetector:
    """Image -> list of :class:`HandDetection`, best first.

    ``max_hands``: keep at most this many (None: all); ``min_palm_score``: palm detector threshold
    (MediaPipe: 0.5); ``min_presence``: landmark network's hand-presence threshold (MediaPipe: 0.5);
    ``nms_iou``: palms overlapping more are merged (0.3), and hands whose landmark boxes overlap more than
    ``duplicate_iou`` are reported once. ``second_look``: when a picture shows no hand, look again at it
    contrast-stretched, then brightened (:mod:`~handssca.detect.second_look`; MediaPipe does not); the
    landmarks found there are in the picture's own pixels.
    """

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        max_hands: int | None = None,
        min_palm_score: float = 0.5,
        min_presence: float = 0.5,
        nms_iou: float = 0.3,
        duplicate_iou: float = 0.5,
        path: str | os.PathLike | None = None,
        second_look: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        with np.load(detector_file() if path is None else path, allow_pickle=False) as data:
            palm, landmark = TfliteGraph.from_npz(data, "palm"), TfliteGraph.from_npz(data, "landmark")
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.palm = palm.eval().to(self.device, memory_format=fmt)
        self.landmark = landmark.eval().to(self.device, memory_format=fmt)
        self._format = fmt
        self.anchors = ssd_anchors(PALM_INPUT)
        self.max_hands, self.min_palm_score, self.min_presence = max_hands, min_palm_score, min_presence
        self.nms_iou, self.duplicate_iou = nms_iou, duplicate_iou
        self.second_look = second_look

    def _run(self, net: TfliteGraph, crops: np.ndarray) -> list[np.ndarray]:
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).to(self.device).contiguous(memory_format=self._format)
        with torch.no_grad():
            return [y.float().cpu().numpy() for y in net(x)]

    def palm_rects(self, image: np.ndarray) -> list[tuple[RotatedRect, float]]:
        """(hand crop, palm score) for every palm in an (H, W, 3) uint8 image, best first."""
        h, w = image.shape[:2]
        side = float(max(w, h))  # letterbox: the whole image centred in a square, zeros around it
        lb = RotatedRect(w / 2, h / 2, side, side, 0.0)
        M = crop_matrix(lb, PALM_INPUT, PALM_INPUT)
        boxes, scores = self._run(self.palm, warp_crop(image, M, PALM_INPUT, PALM_INPUT, "constant")[None])
        palms = weighted_nms(decode_palms(boxes[0], scores[0], self.anchors, self.min_palm_score), self.nms_iou)
        out = []
        for p in palms:  # normalised letterbox coordinates -> image pixels
            corners = apply_inverse(M, p.box.reshape(2, 2) * PALM_INPUT).reshape(-1)
            kps = apply_inverse(M, p.keypoints * PALM_INPUT)
            out.append((rect_from_palm(corners, kps), p.score))
        return out

    def landmarks(self, image: np.ndarray, rects: list[RotatedRect]) -> list[HandDetection | None]:
        """The landmark network on each rect's crop (one batch); None where it finds no hand."""
        if not rects:
            return []
        S = LANDMARK_INPUT
        mats = [crop_matrix(r, S, S) for r in rects]
        crops = np.stack([warp_crop(image, M, S, S, "nearest") for M in mats])
        coords, presence, handedness, world = self._run(self.landmark, crops)
        out: list[HandDetection | None] = []
        for k, (rect, M) in enumerate(zip(rects, mats)):
            if presence[k, 0] < self.min_presence:
                out.append(None)
                continue
            pts = apply_inverse(M, coords[k].reshape(21, 3)[:, :2])
            # MediaPipe's label "Left" (score > 0.5) is for a mirrored picture: the hand seen is a right hand
            p_right = float(handedness[k, 0])
            side = "right" if p_right >= 0.5 else "left"
            out.append(
                HandDetection(
                    bbox=bbox_from_points(pts, expansion=1.0),
                    score=float(presence[k, 0]),
                    hand_side=side,
                    keypoints_2d=pts,
                    keypoints_3d=world_to_image_axes(world[k].reshape(21, 3), rect.rotation),
                    side_score=max(p_right, 1.0 - p_right),
                    rect=rect,
                )
            )
        return out

    def landmarks_in_box(self, image: np.ndarray, box) -> HandDetection | None:
        """The landmark network on a hand box (x, y, w, h pixels) of an (H, W, 3) uint8 image: the hand's
        detection, or None when it sees no hand there. It runs twice: on the box (made square, x1.5,
        upright), then on the crop its landmarks give (turned with the hand), as MediaPipe tracks a hand."""
        x, y, w, h = (float(v) for v in box)
        side = max(w, h) * 1.5
        (first,) = self.landmarks(image, [RotatedRect(x + w / 2, y + h / 2, side, side, 0.0)])
        if first is None:
            return None
        (hand,) = self.landmarks(image, [rect_from_landmarks(first.keypoints_2d)])
        return hand or first

    def _unique(self, hands: list[HandDetection]) -> list[HandDetection]:
        kept: list[HandDetection] = []
        for hand in sorted(hands, key=lambda d: -d.score):
            if all(box_iou_xywh(hand.bbox, k.bbox) <= self.duplicate_iou for k in kept):
                kept.append(hand)
        return kept if self.max_hands is None else kept[: self.max_hands]

    def __call__(self, image: np.ndarray) -> list[HandDetection]:
        """Every hand in an (H, W[, C]) image (uint8 RGB, or anything ``to_rgb_uint8`` converts), best first."""
        return self._find(to_rgb_uint8(image), self.second_look)

    def _find(self, image: np.ndarray, second_look: bool) -> list[HandDetection]:
        hands = self._look(image)
        for picture in second_looks(image) if second_look and not hands else ():
            hands = self._look(picture)
            if hands:
                break
        return hands

    def _look(self, image: np.ndarray) -> list[HandDetection]:
        palms = self.palm_rects(image)
        hands = []
        for (_, score), hand in zip(palms, self.landmarks(image, [r for r, _ in palms])):
            if hand is not None:
                hand.palm_score = score
                hands.append(hand)
        return self._unique(hands)

    def track(self, image: np.ndarray, previous: list[HandDetection], redetect: bool = False) -> list[HandDetection]:
        """The hands of a video frame given those of the frame before: each previous hand's landmarks
        give its crop in this frame (no palm detection). The palm detector runs as well when a hand was
        lost, when none was known, or when ``redetect`` (to find hands that came into view); its hands
        are added when they do not overlap a tracked one."""
        image = to_rgb_uint8(image)
        tracked = [h for h in self.landmarks(image, [rect_from_landmarks(p.keypoints_2d) for p in previous]) if h]
        if previous and len(tracked) == len(previous) and not redetect:
            return self._unique(tracked)
        found = self._find(image, self.second_look and not tracked)  # a second look only when nothing is followed
        fresh = [h for h in found if all(box_iou_xywh(h.bbox, t.bbox) <= self.duplicate_iou for t in tracked)]
        return self._unique(tracked + fresh)
