"""Videos in and out: GIF (Pillow) and mp4/avi (imageio with imageio-ffmpeg), frame by frame."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from handssca.io.images import ImageReadError, to_rgb_uint8
from handssca.messages import described


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
        hint = "" if has_ffmpeg() else "; `pip install 'handssca[video]'` adds mp4/avi support"
        raise ImageReadError(f"{path}: cannot read video ({_why(e)}){hint}") from None
    return _decoded(path, iio.imiter(path)), float(meta.get("fps") or 25.0)


def _why(e: BaseException) -> str:
    """One line for a decoder's exception: its first line, and ffmpeg's own last line when it printed one."""
    text = described(e)
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
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
        yield to_rgb_uint8(np.asarray(frame), f"{path} frame {k}")
        k += 1


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

    def close(self, keep: bool = True) -> Path | None:
        """Write (GIF) or finish (mp4) the file; with ``keep=False`` (nothing worth showing) remove what
        was streamed instead. None when no file is left."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            if keep:
                return self.path
            self.path.unlink(missing_ok=True)
            return None
        if not keep:
            self.frames = []
        if not self.frames:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        first, rest = self.frames[0], self.frames[1:]
        first.save(self.path, save_all=True, append_images=rest, duration=int(1000 / max(self.fps, 1e-3)), loop=0)
        return self.path


def video_format_for(source: Path, video_format: str) -> str:
    """ "gif" or "mp4" for an input video: ``video_format`` when given; "auto" is GIF for GIF inputs and
    when imageio-ffmpeg is not installed (the frames are never lost for want of an encoder), else mp4."""
    if video_format == "mp4" and not has_ffmpeg():
        raise ValueError("--video-format mp4 needs imageio-ffmpeg: pip install 'handssca[video]'")
    if video_format != "auto":
        return video_format
    return "gif" if source.suffix.lower() == ".gif" or not has_ffmpeg() else "mp4"


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True
