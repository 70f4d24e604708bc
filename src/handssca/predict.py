"""``handssca predict``: images, folders and videos in; meshes, JSON and pictures out."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from handssca.io_images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError


@dataclass
class PredictSummary:
    """``ok``: inputs reconstructed (all their files written); ``skipped``: (input, why) of the others;
    ``written``: every file written, once each."""

    written: list[Path] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, files: list[Path]) -> None:
        seen = set(self.written)
        self.written += [f for f in files if f not in seen]

    def text(self) -> str:
        on_disk = sum(1 for f in self.written if f.is_file())
        lines = [f"{len(self.ok)} input(s) reconstructed, {len(self.skipped)} skipped, {on_disk} files written"]
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


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """Frames (RGB uint8) and frames per second of a GIF (Pillow) or a video (imageio with ffmpeg)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        try:
            with Image.open(path) as im:
                frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
                fps = 1000.0 / max(im.info.get("duration", 100), 1)
        except Exception as e:  # a damaged or oversized GIF is this input's problem
            raise ImageReadError(f"{path}: not a readable GIF ({type(e).__name__}: {e})") from None
        return frames, fps
    try:
        import imageio.v3 as iio

        frames = [np.asarray(f)[..., :3] for f in iio.imiter(path)]
        meta = iio.immeta(path)
        return frames, float(meta.get("fps", 25.0))
    except Exception as e:
        raise ImageReadError(
            f"{path}: cannot read video ({e}); `pip install imageio-ffmpeg` adds mp4/avi support"
        ) from None


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """An animated GIF (always) or, for other suffixes, a video through imageio-ffmpeg."""
    if path.suffix.lower() == ".gif":
        from PIL import Image

        imgs = [Image.fromarray(f) for f in frames]
        imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / max(fps, 1e-3)), loop=0)
        return path
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(frames), fps=fps)
    return path


def run_predict(
    reconstructor,
    inputs: list[str],
    out_dir: str | os.PathLike,
    bbox: tuple[float, float, float, float] | None = None,
    hand_side: str = "right",
    progress: bool = True,
) -> PredictSummary:
    """Reconstruct every input into ``out_dir``: per image ``NAME.obj``, ``.ply``, ``.json``,
    ``_overlay.png`` and ``_side.png``; per video a ``NAME/`` folder of frames and ``NAME_overlay.gif/.mp4``.
    NAME is the input's stem, or ``stem_suffix`` when inputs share a stem (:func:`output_names`).

    An input that cannot be read (missing, empty, truncated, corrupt, over
    :data:`~handssca.io_images.MAX_DECODED_PIXELS`) or that the box does not overlap is recorded in
    ``summary.skipped`` with the reason, and the next input is processed. Large images are decoded at a
    reduced working resolution (:meth:`HandReconstructor.working_scale`); the JSON stays in original pixels.

    Raises ValueError, before any work, for a box that is not finite or has no size, and after the loop
    when the box lies outside every input (nothing reconstructed; the box, not the images, is wrong).

    Exit status of ``handssca predict`` (see ``_cmd_predict``): 0 when at least one input was
    reconstructed (or there was nothing to do) even if others were skipped — the summary lists each
    skipped input; 1 when every input was skipped; 2 for a bad argument (``--bbox``, the model file).
    """
    from handssca.inference import BoxOutsideImageError, check_bbox
    from handssca.outputs import save_prediction
    from handssca.render.gl import make_renderer

    if bbox is not None:
        bbox = tuple(float(v) for v in check_bbox(bbox))
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
                frames, fps = read_video(path)
                if not frames:
                    raise ImageReadError(f"{path}: no frames")
                overlays = []
                for k, frame in enumerate(frames):
                    pred = reconstructor(frame, bbox=bbox, hand_side=hand_side)
                    files = save_prediction(pred, frame, out / name, f"frame_{k:05d}", render, source=path)
                    summary.add(files)
                    from PIL import Image

                    with Image.open(files[3]) as im:
                        overlays.append(np.asarray(im.convert("RGB")))
                suffix = ".gif" if path.suffix.lower() == ".gif" else ".mp4"
                summary.add([write_video(out / f"{name}_overlay{suffix}", overlays, fps)])
            else:
                image = reconstructor.load(path, bbox) if hasattr(reconstructor, "load") else _full_image(path)
                pred = reconstructor(image, bbox=bbox, hand_side=hand_side)
                summary.add(save_prediction(pred, image.pixels, out, name, render, source=path))
            summary.ok.append(str(path))
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


def _full_image(path: Path):
    from handssca.io_images import load_image

    return load_image(path)
