"""``handssca predict``: images, folders and videos in; meshes, JSON and pictures out."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from handssca.io_images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError


@dataclass
class PredictSummary:
    """``ok``: inputs reconstructed (all their files written); ``skipped``: (input, why) of those that
    could not be read; ``no_hand``: inputs in which the detector found no hand (nothing written);
    ``hands``: hands reconstructed; ``written``: every file written, once each."""

    written: list[Path] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_hand: list[str] = field(default_factory=list)
    hands: int = 0

    def add(self, files: list[Path]) -> None:
        seen = set(self.written)
        self.written += [f for f in files if f not in seen]

    def text(self) -> str:
        on_disk = sum(1 for f in self.written if f.is_file())
        lines = [
            f"{len(self.ok)} input(s) reconstructed ({self.hands} hand(s)), {len(self.no_hand)} without a hand, "
            f"{len(self.skipped)} skipped, {on_disk} files written"
        ]
        lines += [f"  no hand found in {name}" for name in self.no_hand]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
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


def open_video(path: Path) -> tuple[Iterator[np.ndarray], float]:
    """(frames, frames per second) of a GIF (Pillow) or a video (imageio with ffmpeg): frames are RGB uint8,
    decoded one at a time as the iterator is consumed (a long video is never held in memory).

    Raises :class:`ImageReadError` naming the file when it cannot be opened; the iterator raises it naming
    the frame when a later frame cannot be decoded (a truncated file)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        try:
            with Image.open(path) as im:
                fps = 1000.0 / max(float(im.info.get("duration", 100) or 100), 1.0)
        except Exception as e:  # a damaged or oversized GIF is this input's problem
            raise ImageReadError(f"{path}: not a readable GIF ({type(e).__name__}: {e})") from None

        def gif_frames():
            with Image.open(path) as im:
                yield from _decoded(path, (f.convert("RGB") for f in ImageSequence.Iterator(im)))

        return gif_frames(), fps
    try:
        import imageio.v3 as iio

        meta = iio.immeta(path)
    except Exception as e:
        hint = "" if _has_ffmpeg() else "; `pip install 'handssca[video]'` adds mp4/avi support"
        raise ImageReadError(f"{path}: cannot read video ({_why(e)}){hint}") from None
    return _decoded(path, iio.imiter(path)), float(meta.get("fps") or 25.0)


def _why(e: BaseException) -> str:
    """One line for a decoder's exception: its first line, and ffmpeg's own last line when it printed one."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    if "=== stderr ===" in str(e) and lines[-1] != lines[0]:
        text += f": {lines[-1]}"
    return text


def _decoded(path: Path, frames: Iterator) -> Iterator[np.ndarray]:
    k = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as e:
            raise ImageReadError(f"{path}: frame {k} cannot be decoded ({_why(e)})") from None
        yield np.ascontiguousarray(np.asarray(frame)[..., :3])
        k += 1


#: Videos: the palm detector also runs every this many frames, to find hands that came into view while
#: others were tracked (it always runs when a tracked hand is lost).
REDETECT_EVERY = 10

#: The longest side of an overlay GIF's frames (GIFs are kept in memory until written; mp4 streams).
GIF_MAX_SIDE = 800


class OverlayVideo:
    """Frames in, ``stem.mp4`` (streamed through imageio-ffmpeg) or ``stem.gif`` out. ``fmt``: "mp4" or
    "gif"; :func:`video_format_for` chooses."""

    def __init__(self, stem: Path, fps: float, fmt: str) -> None:
        self.path, self.fps, self.fmt = stem.with_suffix(f".{fmt}"), float(fps), fmt
        self.frames: list = []
        self.writer = None
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        if self.fmt == "gif":
            from PIL import Image

            im = Image.fromarray(frame)
            im.thumbnail((GIF_MAX_SIDE, GIF_MAX_SIDE), Image.Resampling.BILINEAR)
            self.frames.append(im)
        else:
            h, w = frame.shape[:2]
            frame = np.ascontiguousarray(frame[: h - h % 2, : w - w % 2])  # H.264 in yuv420p: even sides
            if self.writer is None:
                import imageio.v2 as iio2

                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.writer = iio2.get_writer(self.path, fps=self.fps, macro_block_size=2)
            self.writer.append_data(frame)
        self.count += 1

    def close(self) -> Path | None:
        """Write (GIF) or finish (mp4) the file; None when no frame was added."""
        if self.writer is not None:
            self.writer.close()
            return self.path
        if not self.frames:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first, rest = self.frames[0], self.frames[1:]
        first.save(self.path, save_all=True, append_images=rest, duration=int(1000 / max(self.fps, 1e-3)), loop=0)
        return self.path


def video_format_for(source: Path, video_format: str) -> str:
    """ "gif" or "mp4" for an input video: ``video_format`` when given; "auto" is GIF for GIF inputs and
    when imageio-ffmpeg is not installed (the frames are never lost for want of an encoder), else mp4."""
    if video_format == "mp4" and not _has_ffmpeg():
        raise ValueError("--video-format mp4 needs imageio-ffmpeg: pip install 'handssca[video]'")
    if video_format != "auto":
        return video_format
    return "gif" if source.suffix.lower() == ".gif" or not _has_ffmpeg() else "mp4"


def _has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


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
    runs again when a hand is lost, and every :data:`REDETECT_EVERY` frames for new hands) and keep their
    number while tracked; ``smooth`` filters each tracked
    hand's vertices and joints with a One-Euro filter. NAME is the input's stem, or ``stem_suffix`` when
    inputs share a stem (:func:`output_names`).

    An input that cannot be read (missing, empty, truncated, corrupt, over
    :data:`~handssca.io_images.MAX_DECODED_PIXELS`) or that the box does not overlap is recorded in
    ``summary.skipped`` with the reason, and the next input is processed. Large images are decoded at a
    reduced working resolution (:meth:`HandReconstructor.working_scale`); the JSON stays in original pixels.

    Raises ValueError, before any work, for a box that is not finite or has no size, and after the loop
    when the box lies outside every input (nothing reconstructed; the box, not the images, is wrong).

    Exit status of ``handssca predict`` (see ``_cmd_predict``): 0 when at least one input was
    reconstructed (or there was nothing to do) even if others were skipped or had no hand — the summary
    lists them; 1 when no input was reconstructed; 2 for a bad argument (``--bbox``, the model file).
    """
    from handssca.inference import BoxOutsideImageError, check_bbox
    from handssca.render.gl import make_renderer

    if bbox is not None:
        bbox = tuple(float(v) for v in check_bbox(bbox))
    if hand_side not in (None, "right", "left"):
        raise ValueError(f"hand side (--hand): expected right or left; got {hand_side!r}")
    if video_format not in ("auto", "mp4", "gif"):
        raise ValueError(f"video format: expected auto, mp4 or gif; got {video_format!r}")
    video_format_for(Path("x.mp4"), video_format)  # --video-format mp4 without an encoder: before any work
    mode = "bbox" if bbox is not None else "whole" if whole_image else "detect"
    if mode == "detect" and not hasattr(reconstructor, "reconstruct_all"):
        mode = "whole"
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
                found = _predict_video(
                    reconstructor, path, name, out, mode, bbox, hand_side, smooth, video_format, render, summary
                )
            else:
                found = _predict_image(reconstructor, path, name, out, mode, bbox, hand_side, render, summary)
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


def _left_to_right(preds: list) -> list:
    return sorted(preds, key=lambda p: float(p.bbox[0] + p.bbox[2] / 2))


def _predict_image(rec, path: Path, name: str, out: Path, mode: str, bbox, hand_side, render, summary) -> bool:
    """Write one image's files; False when no hand was found (nothing written)."""
    from PIL import Image

    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay

    side = hand_side or "right"
    if mode != "detect":
        image = rec.load(path, bbox) if hasattr(rec, "load") else _full_image(path)
        pred = rec(image, bbox=bbox, hand_side=side)
        summary.add(save_prediction(pred, image.pixels, out, name, render, source=path))
        summary.hands += 1
        return True
    scaled, found = rec.detect(path)
    if not found:
        return False
    preds = _left_to_right(rec.reconstruct_all(scaled, hand_side=hand_side, detections=found))
    for k, pred in enumerate(preds, 1):
        summary.add(save_prediction(pred, scaled.pixels, out, f"{name}_hand{k}", render, source=path))
    overlay_path = out / f"{name}_overlay.png"
    Image.fromarray(hands_overlay(preds, scaled.pixels, render)).save(overlay_path)
    summary.add([overlay_path])
    summary.hands += len(preds)
    return True


def _predict_video(
    rec, path: Path, name: str, out: Path, mode: str, bbox, hand_side, smooth: bool, video_format: str, render, summary
) -> bool:
    """Write one video's per-frame files and its overlay video, frame by frame; False when no frame had a
    hand. A frame that cannot be decoded ends the video: what was written is kept (the overlay video
    included) and the error is raised naming the frame."""
    from handssca.detect.tracking import HandTracks, OneEuroFilter
    from handssca.frames import project
    from handssca.io_images import ScaledImage
    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay

    frames, fps = open_video(path)
    video = OverlayVideo(out / f"{name}_overlay", fps, video_format_for(path, video_format))
    tracks, filters = HandTracks(), {}
    previous: list = []
    any_hand, count = False, 0
    try:
        for k, frame in enumerate(frames):
            count += 1
            scaled = ScaledImage.full(frame, name=f"{path} frame {k}")
            if mode == "detect":
                found = rec.detector.track(frame, previous, redetect=k % REDETECT_EVERY == 0)
                previous = found
                preds = rec.reconstruct_all(scaled, hand_side=hand_side, detections=found)
                ids = tracks.update([p.bbox for p in preds], [p.hand_side for p in preds])
            else:
                preds, ids = [rec(scaled, bbox=bbox, hand_side=hand_side or "right")], [1]
            for tid, pred in zip(ids, preds):
                pred.extras["track_id"] = tid
                if smooth:
                    f = filters.setdefault(tid, (OneEuroFilter(fps, 1.0, 20.0), OneEuroFilter(fps, 1.0, 20.0)))
                    pred.vertices, pred.joints = f[0](pred.vertices), f[1](pred.joints)
                    pred.joints_2d = project(pred.joints, pred.K)
                    pred.extras["smoothed"] = (
                        "vertices, joints_3d_m and joints_2d_px: One-Euro filter (min_cutoff 1 Hz, beta 20 /m) "
                        "over the frames of this hand; the MANO parameters are this frame's own"
                    )
            filters = {tid: f for tid, f in filters.items() if tid in ids}  # a lost hand starts afresh
            for tid, pred in zip(ids, preds):
                stem = f"frame_{k:05d}" if mode != "detect" else f"frame_{k:05d}_hand{tid}"
                summary.add(save_prediction(pred, frame, out / name, stem, render, source=path))
            summary.hands += len(preds)
            any_hand |= bool(preds)
            video.add(hands_overlay(preds, frame, render, labels=mode == "detect", numbers=ids))
    finally:
        written = video.close() if any_hand else None
        if written is not None:
            summary.add([written])
    if count == 0:
        raise ImageReadError(f"{path}: no frames")
    return any_hand


def _full_image(path: Path):
    from handssca.io_images import load_image

    return load_image(path)
