"""Reconstruct the hands of an input: the one flow ``handssca predict`` and the web page share.

    from handssca.reconstruct import Mode, Reconstruction
    run = Reconstruction(rec, Mode.DETECT)          # rec: a HandReconstructor
    found = run.image("photo.jpg")                  # ImageHands: the hands left to right, those left out
    for frame in run.video(frames, fps): ...        # VideoFrame by VideoFrame, hands tracked

What each caller writes (files, pictures, a page) is its own; how the hands are found is this module's.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from handssca.io.images import ScaledImage
from handssca.results import HandPrediction, VideoFrame

if TYPE_CHECKING:  # imported when a reconstruction is made: it brings torch
    from handssca.inference import HandReconstructor


class Mode(str, enum.Enum):
    """How the hands of an input are found."""

    #: every hand the bundled detector finds, each with its detected side (or the side given)
    DETECT = "detect"
    #: the whole picture as one hand's box
    WHOLE = "whole"
    #: one box given (x, y, w, h, pixels), the same for every input
    BOX = "box"


def check_mode(mode: Mode | str) -> Mode:
    """``mode`` as a :class:`Mode` (a Mode or its value); ValueError naming the values otherwise."""
    try:
        return Mode(mode)
    except ValueError:
        values = ", ".join(repr(m.value) for m in Mode)
        raise ValueError(f"mode: expected one of {values}; got {mode!r}") from None


def left_to_right(hands: Iterable[HandPrediction]) -> list[HandPrediction]:
    """Hands in the order they are numbered: by the centre of their box, left to right."""
    return sorted(hands, key=lambda p: float(p.bbox[0] + p.bbox[2] / 2))


@dataclass
class ImageHands:
    """The hands of one image: ``image`` as decoded (its working resolution, :class:`ScaledImage`),
    ``hands`` left to right ([] when the detector found none), ``left_out``: why each detected hand that
    could not be reconstructed was left out (the others are kept)."""

    image: ScaledImage
    hands: list[HandPrediction]
    left_out: list[str] = field(default_factory=list)


class Reconstruction:
    """What is done with every input of a run: its hands found as ``mode`` says and reconstructed by
    ``rec``. ``hand_side``: the side of every hand (default: the detected side; right without detection);
    ``bbox``: the box of :attr:`Mode.BOX`; ``smooth``: videos' tracked hands filtered
    (:meth:`~handssca.inference.HandReconstructor.track_video`). All checked here, once."""

    def __init__(
        self,
        rec: HandReconstructor,
        mode: Mode | str = Mode.DETECT,
        hand_side: str | None = None,
        bbox=None,
        smooth: bool = False,
    ) -> None:
        from handssca.inference import check_bbox, check_hand_side

        self.rec, self.mode = rec, check_mode(mode)
        self.hand_side = check_hand_side(hand_side, allow_none=True)
        if (bbox is not None) != (self.mode is Mode.BOX):
            raise ValueError(
                f"bbox: a box goes with mode {Mode.BOX.value!r} (and only with it); mode {self.mode.value!r}"
            )
        self.bbox = None if bbox is None else tuple(float(v) for v in check_bbox(bbox))
        self.smooth = bool(smooth)

    def image(self, path: str | os.PathLike) -> ImageHands:
        """The hands of one image file, decoded at the reconstructor's working resolution.

        Raises what the loader raises for a file it cannot read (:class:`~handssca.io.images.ImageReadError`),
        :class:`~handssca.inference.BoxOutsideImageError` for a box outside the image, and ValueError when
        every detected hand failed (the reasons joined)."""
        rec = self.rec
        scaled = rec.load(path, self.bbox)
        if self.mode is not Mode.DETECT:
            return ImageHands(scaled, [rec(scaled, bbox=self.bbox, hand_side=self.hand_side or "right")])
        errors: list[str] = []
        hands = left_to_right(rec.reconstruct_all(scaled, hand_side=self.hand_side, errors=errors, source=path))
        if not hands and errors:  # every detected hand failed: the input fails, with the reasons
            raise ValueError("; ".join(errors))
        return ImageHands(scaled, hands, errors)

    def video(self, frames: Iterable[np.ndarray], fps: float, errors: list[str] | None = None) -> Iterator[VideoFrame]:
        """The hands of consecutive (H, W, 3) uint8 frames, a :class:`~handssca.results.VideoFrame` each, as
        they go; a detected hand that cannot be reconstructed is left out of its frame and described in
        ``errors``."""
        return self.rec.track_video(
            frames,
            fps,
            self.hand_side,
            self.smooth,
            bbox=self.bbox,
            whole_image=self.mode is Mode.WHOLE,
            errors=errors,
        )
