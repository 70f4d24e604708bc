"""``handssca predict``: images, folders and videos in; meshes, JSON and pictures out."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from handssca.io.images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError
from handssca.io.video import OverlayVideo, open_video, video_format_for

if TYPE_CHECKING:  # imported when used: the reconstruction brings torch
    from handssca.reconstruct import Reconstruction


@dataclass
class PredictSummary:
    """``ok``: inputs reconstructed (all their files written); ``skipped``: (input, why) of those that
    could not be read; ``no_hand``: inputs in which the detector found no hand (nothing written);
    ``hands``: hands reconstructed; ``hands_left_out``: (input, why) of detected hands that could not be
    reconstructed while the input's others were; ``written``: every file written, once each."""

    written: list[Path] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_hand: list[str] = field(default_factory=list)
    hands: int = 0
    hands_left_out: list[tuple[str, str]] = field(default_factory=list)
    #: (input, why) of hands whose landmark fit was not used (they keep the network's mesh)
    network_meshes: list[tuple[str, str]] = field(default_factory=list)
    #: hands whose mesh is the hand model fitted to their landmarks
    fitted: int = 0
    #: (input, what) of hands whose side is not the detector's: only the other side's fit matched their landmarks
    sides_from_fit: list[tuple[str, str]] = field(default_factory=list)
    _seen: set[Path] = field(default_factory=set, repr=False)  # the paths of ``written``, for add's test

    def count(self, name: str, preds: list) -> None:
        """Count reconstructed hands and how their meshes were made."""
        self.hands += len(preds)
        for pred in preds:
            fit = pred.extras.get("landmark_fit")
            if pred.extras.get("mesh_source") == "landmark_fit":
                self.fitted += 1
            elif fit is not None and fit.get("reason"):
                self.network_meshes.append((name, fit["reason"]))
            side = pred.extras.get("side_check") or {}
            if side.get("from") == "landmark_fit":
                what = f"the hand detected as {side['detected']} is given as a {pred.hand_side} hand: {side['reason']}"
                self.sides_from_fit.append((name, what))

    def add(self, files: list[Path]) -> None:
        """Append the files not yet in :attr:`written` (in their order; constant time per file)."""
        for f in files:
            if f not in self._seen:
                self._seen.add(f)
                self.written.append(f)

    def text(self) -> str:
        on_disk = sum(1 for f in self.written if f.is_file())
        lines = [
            f"{len(self.ok)} input(s) reconstructed ({self.hands} hand(s)), {len(self.no_hand)} without a hand, "
            f"{len(self.skipped)} skipped, {on_disk} files written"
        ]
        if self.hands_left_out:
            lines[0] += f", {len(self.hands_left_out)} detected hand(s) left out"
        if self.fitted or self.network_meshes:
            lines[0] += f"; {self.fitted} hand(s) fitted to their landmarks"
        if self.network_meshes:
            lines[0] += f", {len(self.network_meshes)} kept the network's mesh"
        lines += [f"  no hand found in {name}" for name in self.no_hand]
        lines += [f"  {name}: {what}" for name, what in self.sides_from_fit]
        lines += [f"  left out a hand of {name}: {why}" for name, why in self.hands_left_out]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        lines += [f"  the network's mesh for a hand of {name}: {why}" for name, why in self.network_meshes]
        return "\n".join(lines)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders expand to their images and videos (sorted). A file named twice counts once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        for q in (
            sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES) if p.is_dir() else [p]
        ):
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


def output_names(paths: list[Path]) -> list[str]:
    """One distinct output name per input: its stem, or ``stem_suffix`` (``x.png`` -> ``x_png``) when
    inputs share a stem, numbered (``x_png_2``) when they still collide. Compared case-insensitively."""
    stems = Counter(p.stem.lower() for p in paths)
    names: list[str] = []
    used: set[str] = set()
    for p in paths:
        name = p.stem if stems[p.stem.lower()] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower() or 'file'}"
        base, k = name, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        names.append(name)
    return names


def run_predict(
    reconstructor,
    inputs: list[str],
    out_dir: str | os.PathLike,
    bbox: tuple[float, float, float, float] | None = None,
    hand_side: str | None = None,
    progress: bool = True,
    whole_image: bool = False,
    smooth: bool = False,
    video_format: str = "auto",
) -> PredictSummary:
    """Reconstruct every input into ``out_dir``.

    Without ``bbox`` (and without ``whole_image``) the bundled detector finds every hand and each is
    reconstructed with its detected side (``hand_side`` overrides it): per image ``NAME_hand1.obj``,
    ``.ply``, ``.json``, ``_overlay.png``, ``_side.png`` for each hand (numbered left to right) and
    ``NAME_overlay.png`` with all of them; an image without a hand is listed in ``summary.no_hand`` and
    gets no file. With ``bbox`` (one box for every input) or ``whole_image``: one hand per input, files
    ``NAME.obj`` ... as before, side ``hand_side`` (default right).
    Videos: a ``NAME/`` folder with those files per frame (``frame_00000_hand1.obj`` ...) and
    ``NAME_overlay.mp4`` (through imageio-ffmpeg; ``.gif`` without it or for GIF inputs). Hands are
    tracked from frame to frame (the landmarks of one frame give the crop of the next; the palm detector
    runs again when a hand is lost, and every few frames for new hands; :meth:`track_video`) and keep their
    number while tracked; ``smooth`` filters each tracked
    hand's vertices and joints with a One-Euro filter. NAME is the input's stem, or ``stem_suffix`` when
    inputs share a stem (:func:`output_names`).

    An input that cannot be read (missing, empty, truncated, corrupt, over
    :data:`~handssca.io.images.MAX_DECODED_PIXELS`) or that the box does not overlap is recorded in
    ``summary.skipped`` with the reason, and the next input is processed. Large images are decoded at a
    reduced working resolution (:meth:`HandReconstructor.working_scale`); the JSON stays in original pixels.

    Raises ValueError, before any work, for a box that is not finite or has no size, and after the loop
    when the box lies outside every input (nothing reconstructed; the box, not the images, is wrong).

    Exit status of ``handssca predict`` (see ``_cmd_predict``): 0 when at least one input was
    reconstructed (or there was nothing to do) even if others were skipped or had no hand — the summary
    lists them; 1 when no input was reconstructed; 2 for a bad argument (``--bbox``, the model file).
    """
    from handssca.inference import BoxOutsideImageError
    from handssca.reconstruct import Mode, Reconstruction
    from handssca.render.gl import make_renderer

    mode = Mode.BOX if bbox is not None else Mode.WHOLE if whole_image else Mode.DETECT
    run = Reconstruction(reconstructor, mode, hand_side, bbox, smooth)  # the box and side checked: before any work
    if video_format not in ("auto", "mp4", "gif"):
        raise ValueError(f"video format: expected auto, mp4 or gif; got {video_format!r}")
    video_format_for(Path("x.mp4"), video_format)  # --video-format mp4 without an encoder: before any work
    render = make_renderer("auto")
    out = Path(out_dir)
    summary = PredictSummary()
    paths = expand_inputs(inputs)
    box_errors: list[BoxOutsideImageError] = []
    for path, name in tqdm(
        list(zip(paths, output_names(paths))), desc="predict", disable=not progress, dynamic_ncols=True
    ):
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                found = _predict_video(run, path, name, out, video_format, render, summary)
            else:
                found = _predict_image(run, path, name, out, render, summary)
            (summary.ok if found else summary.no_hand).append(str(path))
        except BoxOutsideImageError as e:
            box_errors.append(e)
            summary.skipped.append((str(path), str(e)))
        except (ImageReadError, ValueError, OSError, MemoryError) as e:
            summary.skipped.append((str(path), str(e) or type(e).__name__))
    if box_errors and not summary.ok and len(box_errors) == len(summary.skipped):
        raise (
            box_errors[0] if len(box_errors) == 1 else BoxOutsideImageError(f"{box_errors[0]} (and every other input)")
        )
    return summary


def _predict_image(run: Reconstruction, path: Path, name: str, out: Path, render, summary) -> bool:
    """Write one image's files; False when no hand was found (nothing written)."""
    from PIL import Image

    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay
    from handssca.reconstruct import Mode

    found = run.image(path)
    preds, pixels = found.hands, found.image.pixels
    if run.mode is not Mode.DETECT:
        summary.add(save_prediction(preds[0], pixels, out, name, render, source=path))
        summary.count(str(path), preds)
        return True
    if not preds:
        return False
    summary.hands_left_out += [(str(path), why) for why in found.left_out]  # those hands only; the others are written
    for k, pred in enumerate(preds, 1):
        summary.add(save_prediction(pred, pixels, out, f"{name}_hand{k}", render, source=path))
    overlay_path = out / f"{name}_overlay.png"
    Image.fromarray(hands_overlay(preds, pixels, render)).save(overlay_path)
    summary.add([overlay_path])
    summary.count(str(path), preds)
    return True


def _predict_video(run: Reconstruction, path: Path, name: str, out: Path, video_format: str, render, summary) -> bool:
    """Write one video's per-frame files and its overlay video, frame by frame; False when no frame had a
    hand. A frame that cannot be decoded ends the video: what was written is kept (the overlay video
    included) and the error is raised naming the frame."""
    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay
    from handssca.reconstruct import Mode

    detect = run.mode is Mode.DETECT
    frames, fps = open_video(path)
    video = OverlayVideo(out / f"{name}_overlay", fps, video_format_for(path, video_format))
    any_hand, count = False, 0
    errors: list[str] = []
    try:
        for f in run.video(frames, fps, errors):
            count += 1
            for tid, hand in zip(f.ids, f.hands):
                stem = f"frame_{f.index:05d}_hand{tid}" if detect else f"frame_{f.index:05d}"
                summary.add(save_prediction(hand, f.image, out / name, stem, render, source=path))
            summary.count(f"{path} frame {f.index}", f.hands)
            any_hand |= bool(f.hands)
            video.add(hands_overlay(f.hands, f.image, render, labels=detect, numbers=f.ids))
    finally:  # always closed (an ffmpeg process); removed when no frame had a hand
        written = video.close(keep=any_hand)
        if written is not None:
            summary.add([written])
        summary.hands_left_out += [(str(path), why) for why in errors]
    if count == 0:
        raise ImageReadError(f"{path}: no frames")
    return any_hand
