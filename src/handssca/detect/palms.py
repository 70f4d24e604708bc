"""Decoding MediaPipe's palm-detection output: SSD anchors, boxes and keypoints, weighted NMS.

Pure numpy. Coordinates are normalised to the network's 192 x 192 input ([0, 1], x right, y down), as
MediaPipe's ``TensorsToDetectionsCalculator`` produces them; :func:`decode_palms` follows the options of
MediaPipe's ``palm_detection_cpu`` graph (scores sigmoid of logits clipped to +-100, threshold 0.5,
box and keypoint offsets in input pixels relative to fixed-size anchors), and :func:`weighted_nms`
its ``NonMaxSuppressionCalculator`` (IoU 0.3, WEIGHTED: each kept palm is the score-weighted mean of
the palms it suppresses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The palm network's input side, pixels.
PALM_INPUT = 192
#: Output strides of its four anchor layers (layers with the same stride share one grid).
PALM_STRIDES = (8, 16, 16, 16)
#: Palm keypoints: 0 wrist centre, 1 index MCP, 2 middle MCP, 3 ring MCP, 4 pinky MCP, 5-6 thumb.
NUM_PALM_KEYPOINTS = 7


@dataclass
class Palm:
    """One palm in normalised input coordinates of the detector's (letterboxed) input."""

    box: np.ndarray  # (4,) xmin, ymin, xmax, ymax in [0, 1]
    keypoints: np.ndarray  # (7, 2) x, y in [0, 1]
    score: float


def ssd_anchors(input_size: int = PALM_INPUT, strides: tuple[int, ...] = PALM_STRIDES) -> np.ndarray:
    """(N, 2) anchor centres (x, y), normalised, in the network's output order (N = 2016 for 192).

    MediaPipe's ``SsdAnchorsCalculator`` with one aspect ratio, an interpolated scale and
    ``fixed_anchor_size``: two anchors per cell and layer, consecutive layers with the same stride
    sharing a grid (their anchors interleaved per cell); every anchor has width = height = 1.
    """
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        n = int(np.ceil(input_size / strides[i]))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        cell = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell, per_cell, axis=0))
        i = j
    return np.concatenate(centres).astype(np.float64)


def decode_palms(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    min_score: float = 0.5,
    input_size: int = PALM_INPUT,
) -> list[Palm]:
    """Palms scoring at least ``min_score`` from one image's raw outputs.

    raw_boxes (N, 18): x, y, w, h offsets then 7 keypoints (x, y), in input pixels relative to the
    anchor; raw_scores (N,) or (N, 1): logits. Returns palms in anchor order.
    """
    raw_boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.flatnonzero(scores >= min_score)
    palms = []
    for k in keep:
        r, a = raw_boxes[k] / input_size, anchors[k]
        cx, cy, w, h = r[0] + a[0], r[1] + a[1], r[2], r[3]
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        kps = r[4 : 4 + 2 * NUM_PALM_KEYPOINTS].reshape(-1, 2) + a
        palms.append(Palm(box=box, keypoints=kps, score=float(scores[k])))
    return palms


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes; 0 when either is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 and inter > 0 else 0.0


def box_iou_xywh(a, b) -> float:
    """:func:`box_iou` of two (x, y, w, h) boxes."""
    (x, y, w, h), (u, v, p, q) = (tuple(float(t) for t in box) for box in (a, b))
    return box_iou(np.array([x, y, x + w, y + h]), np.array([u, v, u + p, v + q]))


def weighted_nms(palms: list[Palm], threshold: float = 0.3) -> list[Palm]:
    """MediaPipe's weighted non-maximum suppression: take the best remaining palm, average it with every
    remaining palm whose IoU with it exceeds ``threshold`` (itself included), weights = scores; the result
    keeps the best score. Repeats on the rest. Returns palms by decreasing score."""
    remaining = sorted(palms, key=lambda p: -p.score)
    out = []
    while remaining:
        top = remaining[0]
        overlaps = [box_iou(p.box, top.box) > threshold for p in remaining[1:]]
        group = [top] + [p for p, o in zip(remaining[1:], overlaps) if o]
        w = np.array([p.score for p in group])
        box = np.einsum("k,ki->i", w, np.stack([p.box for p in group])) / w.sum()
        kps = np.einsum("k,kij->ij", w, np.stack([p.keypoints for p in group])) / w.sum()
        out.append(Palm(box=box, keypoints=kps, score=top.score))
        remaining = [p for p, o in zip(remaining[1:], overlaps) if not o]
    return out
