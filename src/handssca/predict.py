"""``handssca predict``: images, folders and videos in; meshes, JSON and pictures out."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from handssca.io_images import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageReadError, read_image


@dataclass
class PredictSummary:
    written: list[Path] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{len(self.ok)} input(s) reconstructed, {len(self.skipped)} skipped, {len(self.written)} files written"]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders expand to their images and videos (sorted)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        else:
            out.append(p)
    return out


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """Frames (RGB uint8) and frames per second of a GIF (Pillow) or a video (imageio with ffmpeg)."""
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
            fps = 1000.0 / max(im.info.get("duration", 100), 1)
        return frames, fps
    try:
        import imageio.v3 as iio

        frames = [np.asarray(f)[..., :3] for f in iio.imiter(path)]
        meta = iio.immeta(path)
        return frames, float(meta.get("fps", 25.0))
    except Exception as e:
        raise ImageReadError(f"{path}: cannot read video ({e}); `pip install imageio-ffmpeg` adds mp4/avi support") from None


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
    """Reconstruct every input; an unreadable input is reported and skipped, the others still written."""
    from handssca.outputs import save_prediction
    from handssca.render.gl import make_renderer

    render = make_renderer("auto")
    out = Path(out_dir)
    summary = PredictSummary()
    paths = expand_inputs(inputs)
    for path in tqdm(paths, desc="predict", disable=not progress, dynamic_ncols=True):
        try:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                frames, fps = read_video(path)
                if not frames:
                    raise ImageReadError(f"{path}: no frames")
                overlays = []
                for k, frame in enumerate(frames):
                    pred = reconstructor(frame, bbox=bbox, hand_side=hand_side)
                    files = save_prediction(pred, frame, out / path.stem, f"frame_{k:05d}", render)
                    summary.written += files
                    from PIL import Image

                    overlays.append(np.asarray(Image.open(files[3]).convert("RGB")))
                suffix = ".gif" if path.suffix.lower() == ".gif" else ".mp4"
                summary.written.append(write_video(out / f"{path.stem}_overlay{suffix}", overlays, fps))
            else:
                image = read_image(path)
                pred = reconstructor(image, bbox=bbox, hand_side=hand_side)
                summary.written += save_prediction(pred, image, out, path.stem, render)
            summary.ok.append(str(path))
        except (ImageReadError, ValueError, OSError) as e:
            summary.skipped.append((str(path), str(e)))
    return summary
