"""The pictures of one prediction: the mesh and joints over the image it was found in, and a side view."""

from __future__ import annotations

import numpy as np

from handssca.frames import pixel_scale
from handssca.pictures.draw import SIDE_COLORS, draw_boxes, draw_joints, side_view
from handssca.results import HandPrediction

#: The longest side of a written overlay picture; larger inputs get an overlay reduced to it.
OVERLAY_MAX_SIDE = 2048


def overlay_frame(image_hw: tuple[int, int], picture_hw: tuple[int, int], max_side: int = OVERLAY_MAX_SIDE):
    """Size (h, w) of the overlay of a ``picture_hw`` picture of an ``image_hw`` image (the same view at
    any resolution), and the (3, 3) map from the image's pixels to the overlay's (pixel centres at integers)."""
    H, W = image_hw
    ph, pw = picture_hw
    r = min(1.0, max_side / max(ph, pw))
    oh, ow = max(1, round(ph * r)), max(1, round(pw * r))
    sx, sy = W / ow, H / oh
    return (oh, ow), pixel_scale(sx, sy)


def prediction_pictures(
    pred: HandPrediction, image: np.ndarray, render=None, side_size: int = 320
) -> tuple[np.ndarray, np.ndarray]:
    """(overlay, side view) uint8 RGB images of a :class:`~handssca.results.HandPrediction`.

    ``image``: the picture the hand was found in, at its original size (``pred.image_size``) or reduced
    (a working copy of a large file); the overlay is drawn at that size, at most :data:`OVERLAY_MAX_SIDE`
    pixels long.
    """
    side = side_view(pred.vertices, pred.faces, size=side_size, render=render)
    return prediction_overlay(pred, image, render), (np.clip(side, 0, 1) * 255).astype(np.uint8)


def prediction_overlay(pred: HandPrediction, image: np.ndarray, render=None) -> np.ndarray:
    """The overlay of :func:`prediction_pictures` alone: mesh and joints over the image."""
    from PIL import Image

    from handssca.render.overlay import overlay_mesh

    (oh, ow), A = overlay_frame(tuple(pred.image_size), image.shape[:2])
    if (oh, ow) != image.shape[:2]:
        picture = Image.fromarray(np.ascontiguousarray(image))
        image = np.asarray(picture.resize((ow, oh), Image.Resampling.BILINEAR, reducing_gap=3.0))
    K = A @ np.asarray(pred.K, dtype=np.float64)
    joints_2d = np.asarray(pred.joints_2d, dtype=np.float64) @ A[:2, :2].T + A[:2, 2]
    over = overlay_mesh(image.astype(np.float32) / 255.0, pred.vertices, pred.faces, K, render, alpha=0.7)
    return draw_joints(over, joints_2d, color=(230, 40, 40), radius=max(2, int(max(image.shape[:2]) / 200)))


def hands_overlay(
    preds: list[HandPrediction], image: np.ndarray, render=None, labels: bool = True, numbers: list[int] | None = None
) -> np.ndarray:
    """(h, w, 3) uint8: every hand of one image drawn over it (each over the picture of those before it);
    ``image`` as for :func:`prediction_pictures`. ``labels``: each hand's crop box, numbered left to
    right in list order (or by ``numbers``) with its side (``1 right``), coloured by side. The image itself (at most
    :data:`OVERLAY_MAX_SIDE` long) when ``preds`` is empty."""
    over = image
    for pred in preds:
        over = prediction_overlay(pred, over, render)
    if preds and labels:
        (oh, ow), A = overlay_frame(tuple(preds[0].image_size), image.shape[:2])
        boxes = []
        for p in preds:  # the crop box in the overlay's pixels
            x, y, w, h = (float(v) for v in p.bbox)
            (x0, y0), (x1, y1) = np.array([[x, y], [x + w, y + h]]) @ A[:2, :2].T + A[:2, 2]
            boxes.append((x0, y0, x1 - x0, y1 - y0))
        numbers = list(range(1, len(preds) + 1)) if numbers is None else numbers
        names = [f"{k} {p.hand_side}" for k, p in zip(numbers, preds)]
        over = draw_boxes(over, boxes, names, [SIDE_COLORS.get(p.hand_side, (200, 200, 200)) for p in preds])
    if not preds:
        from PIL import Image

        (oh, ow), _ = overlay_frame(image.shape[:2], image.shape[:2])
        if (oh, ow) != image.shape[:2]:
            over = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((ow, oh), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(over)
