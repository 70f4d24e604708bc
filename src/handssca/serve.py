"""``handssca serve``: a local web page (gradio) where a user drops a photo or a short video and gets its
hands back.

The page shows the meshes drawn over the photo, a rotatable 3D view of them and the files to download
(.obj, .ply and .json of each hand, the pictures); for a video, the overlay as an animation and every
frame's hands. :func:`reconstruct_image` and :func:`reconstruct_video` are the work behind the buttons
and need no browser nor gradio; :func:`build_app` wires it into a page and :func:`serve` runs
the page on a local address. gradio is imported only inside the functions that need it, so importing
this module costs nothing and works without it.

Uploads are taken as files: the package's own loader (:meth:`HandReconstructor.load
<handssca.inference.HandReconstructor.load>`, :func:`handssca.io.images.load_image`) is the first and
only thing that decodes them, so the page works on the pixels ``handssca predict`` works on and says
what it would say about a file it cannot read. Everything a running page writes (gradio's copies of
uploads and of what it shows, each request's outputs) lives in one folder per server: a request's files
go after :data:`KEEP_SECONDS`, the folder when the server stops.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from handssca.messages import first_line
from handssca.reconstruct import Mode, Reconstruction

if TYPE_CHECKING:  # imported when the page is served: it brings torch
    from handssca.inference import HandReconstructor
from handssca.results import HandPrediction

#: The page's labels of the two ways of finding the hand (:class:`~handssca.reconstruct.Mode`): the bundled
#: detector (every hand, each with its side) or the whole picture as one hand's box, with the side the user
#: picks. Labels only: the page maps them to the modes as a request comes in (:data:`PAGE_MODES`).
DETECT, WHOLE = "detect hands", "whole image"
PAGE_MODES = {DETECT: Mode.DETECT, WHOLE: Mode.WHOLE}

#: A request's files (its upload, its outputs and gradio's copies of them) are removed after this many
#: seconds; all of them when the server stops.
KEEP_SECONDS = 3600

#: The largest file the page accepts on any of its inputs, in megabytes (``--max-upload-mb``).
MAX_UPLOAD_MB = 100

#: At most this many requests wait in the queue; more are refused ("queue is full") until one is done.
QUEUE_SIZE = 16

#: The gradio concurrency group of every event that runs the reconstructor (the image and the video
#: buttons): one request at a time among them all, the others wait in the queue and see their place.
RECONSTRUCTOR = "reconstructor"

NO_HAND = "no hand found"


class GradioMissingError(ImportError, ValueError):
    """gradio (the ``serve`` extra) is not installed. A ValueError too, so that the command line reports
    it as one line with exit status 2, like any other input it cannot work with."""


def import_gradio():
    """The gradio module, or :class:`GradioMissingError` saying how to install it."""
    try:
        import gradio
    except ImportError as e:
        raise GradioMissingError(f"the web page needs gradio ({e}): pip install 'handssca[serve]'") from None
    return gradio


@dataclass
class ServeResult:
    """What the page shows for one request.

    ``overlay``: (H, W, 3) uint8, every hand drawn over the photo (None when no hand was found).
    ``viewer_mesh``: a .glb of all hands for the 3D view (glTF frame: y up, centred), seen from
    ``view_distance`` metres to show every hand. ``files``: what the user can download. ``info``: the
    JSON shown, ``{"hands": [each hand's .json file, ...]}``. ``left_out``: why each detected hand that
    could not be reconstructed was left out (the others are kept, as ``handssca predict`` keeps them).
    """

    message: str
    overlay: np.ndarray | None = None
    viewer_mesh: Path | None = None
    view_distance: float | None = None
    files: list[Path] = field(default_factory=list)
    info: dict | None = None
    left_out: list[str] = field(default_factory=list)


class ServerStopping(RuntimeError):
    """The server is stopping: the request in progress ends where it is (its files are removed)."""


def _viewer_mesh(preds: list[HandPrediction], path: Path) -> tuple[Path, float]:
    """One .glb of every hand for the 3D view: the camera frame turned into glTF's (y up, z towards the
    viewer) and centred on the hands, so the view opens on them as the photo shows them; and the camera
    distance (metres) at which the view's 0.8 rad field shows them all."""
    from handssca.frames import opengl_to_opencv
    from handssca.io.meshes import write_glb
    from handssca.pictures.draw import SIDE_COLORS  # as the overlay's labels: right blue, left orange
    from handssca.render.raster import vertex_normals

    verts = [opengl_to_opencv(np.asarray(p.vertices, dtype=np.float64)) for p in preds]  # its own inverse
    allv = np.concatenate(verts)
    centre = (allv.min(0) + allv.max(0)) / 2
    colors = [np.asarray(SIDE_COLORS[p.hand_side]) / 255 for p in preds]
    size = allv.max(0) - allv.min(0)
    distance = float(1.25 * max(size[0], size[1]) + size[2] / 2)
    meshes = []
    for v, p, c in zip(verts, preds, colors):
        v32 = np.asarray(v - centre, dtype=np.float32)  # the normals of the points the file holds
        meshes.append((v32, p.faces, vertex_normals(v32.astype(np.float64), np.asarray(p.faces, dtype=np.int64)), c))
    return write_glb(path, meshes), distance


def reconstruct_image(
    rec: HandReconstructor,
    image: str | os.PathLike,
    mode: Mode | str = Mode.DETECT,
    hand_side: str | None = None,
    out_dir: str | os.PathLike | None = None,
    render=None,
) -> ServeResult:
    """Reconstruct the hands of one image file and write what the page offers into ``out_dir``.

    ``rec``: a :class:`~handssca.inference.HandReconstructor`. ``mode``: :attr:`Mode.DETECT
    <handssca.reconstruct.Mode.DETECT>` finds every hand, :attr:`~handssca.reconstruct.Mode.WHOLE` takes
    the whole image as one hand (:class:`~handssca.reconstruct.Reconstruction`, as ``handssca predict``);
    ``hand_side``: the side of every hand (default: the detected side; right for the whole image).
    ``render``: a renderer of :func:`handssca.render.gl.make_renderer` (None: the numpy rasteriser). A
    detected hand that cannot be reconstructed (a degenerate box) is left out and described in
    ``left_out``, the others are kept. Raises ValueError for an image that cannot be read (the loader's
    message, as ``handssca predict`` gives it), an unknown mode or side, or when every detected hand was
    left out.
    """
    from PIL import Image

    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay, prediction_pictures

    run = Reconstruction(rec, mode, hand_side)
    found = run.image(image)  # decoded at the network's working resolution, outputs in the file's pixels
    scaled, preds, errors = found.image, found.hands, found.left_out
    if not preds:
        return ServeResult(NO_HAND)
    out = Path(out_dir if out_dir is not None else tempfile.mkdtemp(prefix="handssca-serve-"))
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = [out / "overlay.png"]
    for k, p in enumerate(preds, 1):
        pictures = prediction_pictures(p, scaled.pixels, render)
        stem = f"hand{k}_{p.hand_side}"
        files += save_prediction(p, scaled.pixels, out, stem, render, source=Path(image).name, pictures=pictures)
    # every hand on one picture, numbered with its side; one hand in the whole image: its own overlay
    overlay = pictures[0] if run.mode is Mode.WHOLE else hands_overlay(preds, scaled.pixels, render)
    Image.fromarray(overlay).save(files[0])
    sides = ", ".join(p.hand_side for p in preds)
    message = (
        f"{len(preds)} hand{'s' if len(preds) > 1 else ''} found ({sides})"
        if run.mode is Mode.DETECT
        else f"whole image as one {preds[0].hand_side} hand"
    )
    view, distance = _viewer_mesh(preds, out / "hands_view.glb")
    return ServeResult(
        message,
        overlay=overlay,
        viewer_mesh=view,
        view_distance=distance,
        files=[*files, view],
        info={"hands": [json.loads(f.read_text()) for f in files if f.suffix == ".json"]},  # as downloaded
        left_out=errors,
    )


#: The page reconstructs at most this many frames of a video (the rest is not read): it is a demo,
#: ``handssca predict`` takes whole videos.
MAX_VIDEO_FRAMES = 300


def reconstruct_video(
    rec: HandReconstructor,
    video: str | os.PathLike,
    mode: Mode | str = Mode.DETECT,
    hand_side: str | None = None,
    out_dir: str | os.PathLike | None = None,
    render=None,
    smooth: bool = True,
    max_frames: int = MAX_VIDEO_FRAMES,
    stopping: Callable[[], bool] | None = None,
) -> ServeResult:
    """Reconstruct the hands of a short video (its first ``max_frames`` frames) and write what the page
    offers into ``out_dir``: ``overlay.gif`` (shown), ``overlay.mp4`` when imageio-ffmpeg is installed,
    ``hands_per_frame.json`` (every frame's hands with their track numbers) and ``hands_view.glb`` (the
    3D view of the first frame with a hand). Hands are tracked from frame to frame and, with ``smooth``,
    filtered (:meth:`~handssca.inference.HandReconstructor.track_video`); a detected hand that cannot be
    reconstructed is left out of its frame and described in ``left_out``. ``mode`` and ``hand_side``: as
    :func:`reconstruct_image`. Raises ValueError for a video that cannot be read or an unknown mode or side,
    and :class:`ServerStopping` between two frames once ``stopping()`` is true."""
    from itertools import islice

    from handssca.io.video import OverlayVideo, has_ffmpeg, open_video
    from handssca.pictures.prediction import hands_overlay

    run = Reconstruction(rec, mode, hand_side, smooth=smooth)
    detect = run.mode is Mode.DETECT
    frames, fps = open_video(Path(video))
    out = Path(out_dir if out_dir is not None else tempfile.mkdtemp(prefix="handssca-serve-"))
    out.mkdir(parents=True, exist_ok=True)
    videos = [OverlayVideo(out / "overlay", fps, "gif")]
    if has_ffmpeg():
        videos.append(OverlayVideo(out / "overlay", fps, "mp4"))
    per_frame, first_hands, count, with_hands, errors = [], None, 0, 0, []
    try:
        for f in run.video(islice(frames, max_frames), fps, errors):
            if stopping is not None and stopping():
                raise ServerStopping("the server is stopping")
            count += 1
            with_hands += bool(f.hands)
            if f.hands and first_hands is None:
                first_hands = f.hands
            hands = [{"track_id": t, **h.to_json()} for t, h in zip(f.ids, f.hands)]
            per_frame.append({"frame": f.index, "hands": hands})
            picture = hands_overlay(f.hands, f.image, render, labels=detect, numbers=f.ids)
            for v in videos:
                v.add(picture)
    finally:  # the writers are always closed (an ffmpeg process each); nothing is kept without a hand
        files = [p for p in (v.close(keep=first_hands is not None) for v in videos) if p is not None]
    if count == 0:
        raise ValueError(f"{Path(video).name}: no frames")
    if first_hands is None:
        return ServeResult(f"{NO_HAND} in {count} frames", left_out=errors)
    (out / "hands_per_frame.json").write_text(json.dumps({"fps": fps, "frames": per_frame}))
    view, distance = _viewer_mesh(first_hands, out / "hands_view.glb")
    files += [out / "hands_per_frame.json", view]
    tracks = sorted({t for fr in per_frame for t in (h["track_id"] for h in fr["hands"])})
    message = (
        f"hands found in {with_hands} of {count} frames ({len(tracks)} tracked)"
        if detect
        else f"{count} frames, the whole image as one {first_hands[0].hand_side} hand"
    )
    summary = [
        {"frame": fr["frame"], "hands": [(h["track_id"], h["hand_side"]) for h in fr["hands"]]} for fr in per_frame
    ]
    return ServeResult(
        message,
        overlay=None,
        viewer_mesh=view,
        view_distance=distance,
        files=files,
        info={"fps": fps, "frames": summary},
        left_out=errors,
    )


def _last_change(path: Path) -> float:
    """The latest modification time of ``path`` and of everything in it (a folder's files are written,
    copied and touched after the folder is made)."""
    try:
        newest = path.lstat().st_mtime
    except OSError:
        return time.time()  # gone meanwhile: nothing to remove
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, names in os.walk(path):
            for name in dirs + names:
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except OSError:
                    pass
    return newest


class RequestFolders:
    """One fresh output folder per request under ``root``. What lies in ``root`` and in the ``also``
    folders (gradio's cache: the uploads and gradio's copies of what the page shows) is removed once
    ``keep_seconds`` have passed since it last changed: at each new request and at each :meth:`sweep`."""

    def __init__(
        self, root: str | os.PathLike, keep_seconds: float = KEEP_SECONDS, also: tuple[os.PathLike, ...] = ()
    ) -> None:
        self.root, self.keep_seconds = Path(root), float(keep_seconds)
        self.also = tuple(Path(p) for p in also)
        self._lock = threading.Lock()

    def sweep(self) -> None:
        """Remove what is older than ``keep_seconds``."""
        with self._lock:
            self._sweep()

    def _sweep(self) -> None:
        now = time.time()
        for folder in (self.root, *self.also):
            try:
                entries = list(folder.iterdir())
            except OSError:
                continue  # not made yet
            for old in entries:
                if now - _last_change(old) <= self.keep_seconds:
                    continue
                try:
                    if old.is_dir() and not old.is_symlink():
                        shutil.rmtree(old, ignore_errors=True)
                    else:
                        old.unlink(missing_ok=True)
                except OSError:
                    pass  # removed meanwhile

    def new(self) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            self._sweep()
            return Path(tempfile.mkdtemp(prefix="request-", dir=self.root))


class ServerFolder:
    """The one folder of a running page (a context manager): ``requests/`` holds each request's outputs,
    ``gradio/`` gradio's cache (the uploads, gradio's copies of what the page shows). While open,
    ``GRADIO_TEMP_DIR`` names ``gradio/`` (gradio reads it when the page is built and launched), what is
    older than ``keep_seconds`` is swept every ``sweep_every`` seconds and at each request, and on exit
    the whole folder goes. It is made inside the ``GRADIO_TEMP_DIR`` found on entry, else the system's
    temporary folder."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS, sweep_every: float = 60.0) -> None:
        self.keep_seconds, self.sweep_every = float(keep_seconds), float(sweep_every)
        self.root: Path | None = None

    def __enter__(self) -> ServerFolder:
        self._previous = os.environ.get("GRADIO_TEMP_DIR")
        if self._previous:
            Path(self._previous).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="handssca-serve-", dir=self._previous or None))
        self.gradio = self.root / "gradio"
        self.requests = RequestFolders(self.root / "requests", self.keep_seconds, also=(self.gradio,))
        os.environ["GRADIO_TEMP_DIR"] = str(self.gradio)
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_now_and_then, name="handssca-serve-sweep", daemon=True)
        self._sweeper.start()
        return self

    def _sweep_now_and_then(self) -> None:
        while not self._stop.wait(self.sweep_every):
            self.requests.sweep()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sweeper.join()
        if self._previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self._previous
        shutil.rmtree(self.root, ignore_errors=True)


class PageWork:
    """The work behind the page's buttons on one reconstructor ``rec``: one request at a time (gradio's
    queue sends them one by one; the lock holds for any other caller too), each in a fresh folder of
    ``folders``. :meth:`stop` ends a video between two frames and waits for the request in progress."""

    def __init__(self, rec: HandReconstructor, folders: RequestFolders, render=None) -> None:
        self.rec, self.folders, self.render = rec, folders, render
        self._busy = threading.Lock()
        self._stopping = threading.Event()

    def preview(self, image: str | os.PathLike):
        """The upload decoded by the package's loader, as the reconstruction will see it (a
        :class:`~handssca.io.images.ScaledImage`)."""
        return self.rec.load(image)

    def image(self, image: str | os.PathLike, mode: Mode, side: str | None) -> ServeResult:
        with self._busy:
            self._check()
            return reconstruct_image(self.rec, image, mode, side, self.folders.new(), self.render)

    def video(self, video: str | os.PathLike, mode: Mode, side: str | None, smooth: bool) -> ServeResult:
        with self._busy:
            self._check()
            out = self.folders.new()
            return reconstruct_video(
                self.rec, video, mode, side, out, self.render, smooth, stopping=self._stopping.is_set
            )

    def _check(self) -> None:
        if self._stopping.is_set():
            raise ServerStopping("the server is stopping")

    def stop(self) -> None:
        """Refuse new requests and end a video at its next frame (for good)."""
        self._stopping.set()

    def wait(self, timeout: float = 60.0) -> bool:
        """After :meth:`stop`: wait (at most ``timeout`` seconds) for the request in progress to end; True
        when none is left running."""
        return self._busy.acquire(timeout=timeout)


def _named(text: str, upload: str | os.PathLike) -> str:
    """``text`` about an upload, naming it as its sender knows it (its file name) rather than by the
    server's copy: what ``handssca predict NAME`` says of the same file in its own folder."""
    path = str(upload)
    return text.replace(path, Path(path).name).replace(str(Path(path)), Path(path).name)


def _markdown_text(text: str) -> str:
    """Plain text (a file name, a reason) shown as itself in Markdown."""
    return "".join("\\" + c if c in "\\`*_[]<>~|" else c for c in text)


def _left_out_lines(left_out: list[str], upload: str, shown: int = 3) -> str:
    lines = [f"left out: {_markdown_text(_named(why, upload))}" for why in left_out[:shown]]
    if len(left_out) > shown:
        lines.append(f"and {len(left_out) - shown} more detected hands left out")
    return "\n\n".join(lines)


def build_app(
    rec: HandReconstructor,
    out_root: str | os.PathLike | None = None,
    render=None,
    title: str = "HandSSCA",
    max_upload_mb: float = MAX_UPLOAD_MB,
    work: PageWork | None = None,
):
    """The gradio Blocks of the page for reconstructor ``rec``, its queue set up: the image and the video
    requests share one :data:`RECONSTRUCTOR` concurrency group, one at a time, at most
    :data:`QUEUE_SIZE` waiting. ``work``: the page's :class:`PageWork` (default: one with request
    outputs under ``out_root``). ``max_upload_mb`` is stated on the page; :func:`launch` enforces it."""
    gr = import_gradio()
    from handssca.io.images import IMAGE_SUFFIXES

    if work is None:
        if out_root is None:
            raise ValueError("build_app: give out_root or work")
        work = PageWork(rec, RequestFolders(out_root), render)
    limit = f"{max_upload_mb:g} MB"

    def said(e: BaseException, upload: str) -> str:
        """The one line a request that failed gets: the package's own message for what it cannot work with
        (the upload named as its sender knows it); for anything else (a bug) one line saying so, the
        traceback in the server's log."""
        if isinstance(e, ServerStopping):
            return "the server is stopping; try again when it is back"
        if isinstance(e, (ValueError, OSError, MemoryError)):  # an unreadable image or video and the like
            return _named(first_line(e), upload)
        import traceback

        traceback.print_exception(e, file=sys.stderr)
        return (
            f"internal error (a bug in handssca, please report it): {type(e).__name__}: {_named(first_line(e), upload)}"
        )

    def answer(task, upload, shown):
        """The page's outputs for one request: ``task()`` -> ServeResult; its errors said on the page."""
        try:
            result = task()
        except Exception as e:
            raise gr.Error(said(e, upload), print_exception=False) from None
        status = f"**{result.message}**"
        if result.left_out:
            status += "\n\n" + _left_out_lines(result.left_out, upload)
        return (
            status,
            shown(result),
            gr.update(value=str(result.viewer_mesh), camera_position=(90, 90, result.view_distance))
            if result.viewer_mesh
            else None,
            [str(f) for f in result.files] or None,
            result.info,
        )

    def request(label: str | None, side: str | None) -> tuple[Mode | str, str | None]:
        """The page's choices as the reconstruction takes them: the label's mode (an unknown label as it
        is, said by the mode's check), the side only for the whole image (detected hands keep theirs)."""
        mode = PAGE_MODES.get(label or WHOLE, label)
        return mode, (side or "right").lower() if mode is Mode.WHOLE else None

    def run(image_path, mode, side):
        if not image_path:
            raise gr.Error("drop an image first", print_exception=False)
        mode, side = request(mode, side)
        return answer(lambda: work.image(image_path, mode, side), image_path, lambda r: r.overlay)

    def show(image_path):
        """The upload as the package reads it, in the overlay box until it is reconstructed; the previous
        request's outputs cleared. A file it cannot read: its one line in the status, nothing shown."""
        if not image_path:
            return "", None, None, None, None
        try:
            scaled = work.preview(image_path)
        except Exception as e:
            return _markdown_text(said(e, image_path)), None, None, None, None
        h, w = scaled.original_hw
        name = _markdown_text(Path(image_path).name)
        return f"{name}: {w} x {h} pixels; press **Reconstruct**", scaled.pixels, None, None, None

    def run_video(video_path, mode, side, smooth):
        if not video_path:
            raise gr.Error("drop a video first", print_exception=False)
        mode, side = request(mode, side)
        return answer(
            lambda: work.video(video_path, mode, side, bool(smooth)),
            video_path,
            lambda r: next((str(f) for f in r.files if f.suffix == ".gif"), None),
        )

    def mode_and_side(elem_id: str):
        """The 'hand box' choice and the side choice it shows for the whole image."""
        mode = gr.Radio(list(PAGE_MODES), value=DETECT, label="hand box", elem_id=elem_id)
        side = gr.Radio(["right", "left"], value="right", label="hand side (whole image)", visible=False)
        mode.change(lambda m: gr.update(visible=m == WHOLE), mode, side, api_visibility="private")
        return mode, side

    keep = "an hour" if KEEP_SECONDS == 3600 else f"{KEEP_SECONDS / 60:g} minutes"
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown(
            f"# {title}: 3D hands from a photo\nDrop an image, press **Reconstruct**. "
            "Meshes are in metres in the camera frame (x right, y down, z forward); joints in FreiHAND order.\n\n"
            f"Files up to {limit} each. One request runs at a time; the others wait in the queue, which "
            f"shows their place. Uploads and results are kept on the server for {keep}, and removed when "
            "it stops.",
            elem_id="about",
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.File(
                    label=f"image (up to {limit}: {', '.join(s.lstrip('.') for s in sorted(IMAGE_SUFFIXES))})",
                    file_types=sorted(IMAGE_SUFFIXES),
                    type="filepath",
                    elem_id="input-image",
                    height=120,
                )
                mode, side = mode_and_side("mode")
                button = gr.Button("Reconstruct", variant="primary", elem_id="run")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                with gr.Row():
                    overlay = gr.Image(label="overlay", format="png", interactive=False, elem_id="overlay")
                    mesh = gr.Model3D(label="3D mesh (drag to rotate)", elem_id="mesh", height=420)
                files = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="files")
                info = gr.JSON(label="hands (JSON)", elem_id="info")
        outputs = [status, overlay, mesh, files, info]
        button.click(
            run,
            [image, mode, side],
            outputs,
            api_name="reconstruct",
            concurrency_id=RECONSTRUCTOR,
            concurrency_limit=1,
        )
        image.upload(
            show,
            image,
            outputs,
            api_visibility="private",
            concurrency_id="preview",  # a decode at a time, beside the reconstruction
            concurrency_limit=1,
            show_progress="hidden",  # quick; an unreadable file is said in the status
        )
        gr.Markdown(
            f"## A short video\nDrop a video (GIF always; mp4, mov, avi, webm with imageio-ffmpeg): its first "
            f"{MAX_VIDEO_FRAMES} frames are reconstructed, hands tracked from frame to frame."
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.File(
                    label=f"video (up to {limit})",
                    file_types=[".gif", ".mp4", ".mov", ".avi", ".webm", ".mkv"],
                    type="filepath",
                    elem_id="input-video",
                    height=120,
                )
                vmode, vside = mode_and_side("video-mode")
                smooth = gr.Checkbox(value=True, label="smooth (One-Euro filter on each tracked hand)")
                vbutton = gr.Button("Reconstruct video", variant="primary", elem_id="run-video")
                vstatus = gr.Markdown(elem_id="status-video")
            with gr.Column(scale=2):
                with gr.Row():
                    voverlay = gr.Image(label="overlay", type="filepath", interactive=False, elem_id="overlay-video")
                    vmesh = gr.Model3D(label="first frame with a hand, 3D", elem_id="mesh-video", height=420)
                vfiles = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="files-video")
                vinfo = gr.JSON(label="hands per frame (track number, side)", elem_id="info-video")

        vbutton.click(
            run_video,
            [video, vmode, vside, smooth],
            [vstatus, voverlay, vmesh, vfiles, vinfo],
            api_name="reconstruct_video",
            concurrency_id=RECONSTRUCTOR,
            concurrency_limit=1,
        )
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return app


def launch(
    app,
    host: str = "127.0.0.1",
    port: int = 7860,
    users: list[tuple[str, str]] | None = None,
    max_upload_mb: float = MAX_UPLOAD_MB,
):
    """Start ``app`` (of :func:`build_app`) on http://host:port in the background and return it: nothing
    fetched from outside (no analytics, no version check, no share link), ``users`` (name, password)
    asked for when given, uploads over ``max_upload_mb`` megabytes refused."""
    gr = import_gradio()
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=[],
            theme=gr.themes.Default(),
            auth=list(users) if users else None,
            auth_message="HandSSCA: sign in with the name and password the server was started with",
            max_file_size=int(max_upload_mb * 1_000_000),
        )
    except OSError as e:  # gradio's "Cannot find empty port ..."
        why = str(e).split(". ")[0]
        raise OSError(f"cannot listen on {host}:{port} ({why}); is it in use? choose another --port") from None
    return app


def read_users(auth: str | None = None, auth_file: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """(name, password) pairs from ``--auth USER:PASSWORD`` and from an ``--auth-file`` (one USER:PASSWORD
    a line; blank lines and lines starting with # skipped). ValueError naming the flag or the file's line
    (never the password) for anything else."""

    def pair(text: str, where: str) -> tuple[str, str]:
        user, sep, password = text.partition(":")
        if not (sep and user.strip() and password):
            raise ValueError(f"{where}: expected USER:PASSWORD, both non-empty")
        return user.strip(), password

    users = [] if auth is None else [pair(auth, "--auth")]
    if auth_file is not None:
        path = Path(auth_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read the --auth-file ({first_line(e)})") from None
        found = [(n, ln.strip()) for n, ln in enumerate(lines, 1) if ln.strip() and not ln.strip().startswith("#")]
        if not found:
            raise ValueError(f"{path}: no USER:PASSWORD line in the --auth-file")
        users += [pair(ln, f"{path}: line {n}") for n, ln in found]
    return users


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0-like: other machines may reach it


def serve(
    checkpoint: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 7860,
    hand_model: str | None = None,
    device: str | None = None,
    auth: str | None = None,
    auth_file: str | os.PathLike | None = None,
    max_upload_mb: float = MAX_UPLOAD_MB,
    precision: str = "auto",
) -> None:
    """Run the page on http://host:port until interrupted (Ctrl-C or SIGTERM). ``precision``: the network's
    (:meth:`~handssca.inference.HandReconstructor.from_checkpoint`). ``auth`` / ``auth_file``:
    the page asks for a name and password (:func:`read_users`); on an address other machines reach,
    without them, a warning says the page is open to them. Everything the page writes lives in one
    :class:`ServerFolder`, removed on the way out."""
    users = read_users(auth, auth_file)
    if not max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb: expected a positive number of megabytes; got {max_upload_mb:g}")
    app = work = None
    previous = _sigterm_interrupts()
    try:
        with ServerFolder() as folder:  # first: gradio reads GRADIO_TEMP_DIR when imported, too
            import_gradio()  # before the checkpoint is read: say what is missing first
            from handssca.inference import HandReconstructor

            rec = HandReconstructor.from_checkpoint(checkpoint, hand_model, device, precision)
            if not users and not is_loopback(host):
                print(
                    f"handssca serve: warning: {host} is reachable from other machines and the page asks for no "
                    "password: anyone on the network can use it; add --auth USER:PASSWORD or --auth-file FILE",
                    file=sys.stderr,
                    flush=True,
                )
            try:
                work = PageWork(rec, folder.requests)
                app = launch(build_app(rec, work=work, max_upload_mb=max_upload_mb), host, port, users, max_upload_mb)
                print(f"handssca serve: http://{host}:{port} (Ctrl-C to stop)", flush=True)
                while True:
                    time.sleep(0.5)
            finally:  # no request starts now, and the one in progress ends before its folder goes
                if work is not None:
                    work.stop()
                try:
                    if app is not None:
                        app.close(verbose=False)
                finally:
                    if work is not None:
                        work.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a normal stop
        print("handssca serve: stopped", flush=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_interrupts():
    """In the main thread, make SIGTERM stop the page like Ctrl-C does (its files removed); returns the
    previous handler (None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)
