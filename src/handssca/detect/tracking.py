"""Hands over the frames of a video: stable track ids and One-Euro smoothing.

:class:`HandTracks` gives each hand of a frame the id of the hand of the previous frames whose box it
overlaps most (greedy by IoU), or a new id. :class:`OneEuroFilter` is Casiez et al.'s 1-Euro filter
(CHI 2012): an exponential smoothing whose cutoff frequency rises with the signal's speed, so that slow
jitter is removed while fast motion is followed with little lag. It filters arrays of any shape
elementwise (joints, vertices).
"""

from __future__ import annotations

import math

import numpy as np

from handssca.detect.palms import box_iou_xywh


class HandTracks:
    """Track ids for the hands of consecutive frames. ``min_iou``: a hand continues a track when its box
    overlaps that track's last box at least this much (and has the same side, when ``same_side``)."""

    def __init__(self, min_iou: float = 0.2, same_side: bool = True) -> None:
        self.min_iou, self.same_side = float(min_iou), same_side
        self.last: dict[int, tuple[np.ndarray, str]] = {}
        self.next_id = 1

    def update(self, boxes: list[np.ndarray], sides: list[str]) -> list[int]:
        """Ids for this frame's hands (boxes x, y, w, h and sides, in any order); tracks not continued end."""
        pairs = sorted(
            (
                (box_iou_xywh(box, last_box), i, tid)
                for i, box in enumerate(boxes)
                for tid, (last_box, last_side) in self.last.items()
                if not self.same_side or sides[i] == last_side
            ),
            key=lambda p: -p[0],
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for iou, i, tid in pairs:
            if iou >= self.min_iou and ids[i] is None and tid not in taken:
                ids[i] = tid
                taken.add(tid)
        for i in range(len(boxes)):
            if ids[i] is None:
                ids[i] = self.next_id
                self.next_id += 1
        self.last = {tid: (np.asarray(box, dtype=float), side) for tid, box, side in zip(ids, boxes, sides)}
        return [int(t) for t in ids]


class OneEuroFilter:
    """1-Euro filter of a signal sampled at ``freq`` Hz. ``min_cutoff`` (Hz): smoothing at rest (lower:
    smoother); ``beta``: how fast the cutoff rises with speed (higher: less lag); ``d_cutoff`` (Hz): the
    speed estimate's own smoothing. Units of ``beta`` are 1 / (signal units), so it depends on the signal's
    scale (metres for 3D joints and vertices)."""

    def __init__(self, freq: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if freq <= 0 or min_cutoff <= 0 or d_cutoff <= 0:
            raise ValueError("OneEuroFilter: freq, min_cutoff and d_cutoff must be > 0")
        self.freq, self.min_cutoff, self.beta, self.d_cutoff = float(freq), float(min_cutoff), float(beta), d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64))
        return 1.0 / (1.0 + tau * self.freq)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) * self.freq
        a_d = self._alpha(self.d_cutoff)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.dx))
        self.x = a * x + (1 - a) * self.x
        return self.x.copy()
