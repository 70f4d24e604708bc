"""``handssca serve``: a local web page (gradio) where a user drops a photo or a short video and gets its
hands back.

The page shows the meshes drawn over the photo, a rotatable 3D view of them and the files to download
(.obj, .ply and .json of each hand, the pictures); for a video, the overlay as an animation and every
frame's hands. :func:`reconstruct_image` and :func:`reconstruct_video` are the work behind the buttons
and need no browser nor gradio; :func:`build_app` wires it into a page and :func:`serve` runs
the page on a local address. gradio is imported only inside the functions that need it, so importing
this module costs nothing and works without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The two ways of finding the hand: the bundled detector (every hand, each with its side) or the
#: whole picture as one hand's box, with the side the user picks.
DETECT, WHOLE = "detect hands", "whole image"
SIDES = ("right", "left")

#: A request's output folder is removed after this many seconds (the page has copied what it shows).
KEEP_SECONDS = 3600

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
    JSON shown, ``{"hands": [each hand's .json file, ...]}``.
    """

    message: str
    overlay: np.ndarray | None = None
    viewer_mesh: Path | None = None
    view_distance: float | None = None
    files: list[Path] = field(default_factory=list)
    info: dict | None = None


def _viewer_mesh(preds, path: Path) -> tuple[Path, float]:
    """One .glb of every hand for the 3D view: the camera frame turned into glTF's (y up, z towards the
    viewer) and centred on the hands, so the view opens on them as the photo shows them; and the camera
    distance (metres) at which the view's 0.8 rad field shows them all."""
    from handssca.frames import opengl_to_opencv
    from handssca.outputs import write_glb
    from handssca.pictures.draw import SIDE_COLORS  # as the overlay's labels: right blue, left orange

    verts = [opengl_to_opencv(np.asarray(p.vertices, dtype=np.float64)) for p in preds]  # its own inverse
    allv = np.concatenate(verts)
    centre = (allv.min(0) + allv.max(0)) / 2
    colors = [np.asarray(SIDE_COLORS[p.hand_side]) / 255 for p in preds]
    size = allv.max(0) - allv.min(0)
    distance = float(1.25 * max(size[0], size[1]) + size[2] / 2)
    return write_glb(path, [(v - centre, p.faces, c) for v, p, c in zip(verts, preds, colors)]), distance


def reconstruct_image(
    rec,
    image: str | os.PathLike,
    mode: str = DETECT,
    hand_side: str = "right",
    out_dir: str | os.PathLike | None = None,
    render=None,
) -> ServeResult:
    """Reconstruct the hands of one image file and write what the page offers into ``out_dir``.

    ``rec``: a :class:`~handssca.inference.HandReconstructor`. ``mode``: :data:`DETECT` finds every hand
    (``rec.reconstruct_all``), :data:`WHOLE` takes the whole image as one ``hand_side`` hand. ``render``:
    a renderer of :func:`handssca.render.gl.make_renderer` (None: the numpy rasteriser). Raises
    ValueError for an image that cannot be read or an unknown mode or side.
    """
    from PIL import Image

    from handssca.outputs import save_prediction
    from handssca.pictures.prediction import hands_overlay, prediction_pictures

    if mode not in (DETECT, WHOLE):
        raise ValueError(f"mode: expected {DETECT!r} or {WHOLE!r}; got {mode!r}")
    if hand_side not in SIDES:
        raise ValueError(f"hand side: expected 'right' or 'left'; got {hand_side!r}")
    if mode == DETECT and not hasattr(rec, "reconstruct_all"):
        raise ValueError("this reconstructor cannot detect hands: use the whole image")
    scaled = rec.load(image)  # decoded at the network's working resolution, outputs in the file's pixels
    if mode == DETECT:  # numbered left to right, as `handssca predict` numbers them
        preds = sorted(rec.reconstruct_all(scaled, source=image), key=lambda p: float(p.bbox[0] + p.bbox[2] / 2))
    else:
        preds = [rec(scaled, hand_side=hand_side)]
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
    overlay = pictures[0] if mode == WHOLE else hands_overlay(preds, scaled.pixels, render)
    Image.fromarray(overlay).save(files[0])
    sides = ", ".join(p.hand_side for p in preds)
    message = (
        f"{len(preds)} hand{'s' if len(preds) > 1 else ''} found ({sides})"
        if mode == DETECT
        else f"whole image as one {hand_side} hand"
    )
    view, distance = _viewer_mesh(preds, out / "hands_view.glb")
    return ServeResult(
        message,
        overlay=overlay,
        viewer_mesh=view,
        view_distance=distance,
        files=[*files, view],
        info={"hands": [json.loads(f.read_text()) for f in files if f.suffix == ".json"]},  # as downloaded
    )


#: The page reconstructs at most this many frames of a video (the rest is not read): it is a demo,
#: ``handssca predict`` takes whole videos.
MAX_VIDEO_FRAMES = 300


def reconstruct_video(
    rec,
    video: str | os.PathLike,
    mode: str = DETECT,
    hand_side: str = "right",
    out_dir: str | os.PathLike | None = None,
    render=None,
    smooth: bool = True,
    max_frames: int = MAX_VIDEO_FRAMES,
) -> ServeResult:
    """Reconstruct the hands of a short video (its first ``max_frames`` frames) and write what the page
    offers into ``out_dir``: ``overlay.gif`` (shown), ``overlay.mp4`` when imageio-ffmpeg is installed,
    ``hands_per_frame.json`` (every frame's hands with their track numbers) and ``hands_view.glb`` (the
    3D view of the first frame with a hand). Hands are tracked from frame to frame and, with ``smooth``,
    filtered (:meth:`~handssca.inference.HandReconstructor.track_video`). Raises ValueError for a video
    that cannot be read or an unknown mode or side."""
    from itertools import islice

    from handssca.io_video import OverlayVideo, has_ffmpeg, open_video
    from handssca.pictures.prediction import hands_overlay

    if mode not in (DETECT, WHOLE):
        raise ValueError(f"mode: expected {DETECT!r} or {WHOLE!r}; got {mode!r}")
    if hand_side not in SIDES:
        raise ValueError(f"hand side: expected 'right' or 'left'; got {hand_side!r}")
    frames, fps = open_video(Path(video))
    out = Path(out_dir if out_dir is not None else tempfile.mkdtemp(prefix="handssca-serve-"))
    out.mkdir(parents=True, exist_ok=True)
    videos = [OverlayVideo(out / "overlay", fps, "gif")]
    if has_ffmpeg():
        videos.append(OverlayVideo(out / "overlay", fps, "mp4"))
    per_frame, first_hands, count, with_hands = [], None, 0, 0
    side = None if mode == DETECT else hand_side
    try:
        for f in rec.track_video(islice(frames, max_frames), fps, side, smooth, whole_image=mode == WHOLE):
            count += 1
            with_hands += bool(f.hands)
            if f.hands and first_hands is None:
                first_hands = f.hands
            hands = [{"track_id": t, **h.to_json()} for t, h in zip(f.ids, f.hands)]
            per_frame.append({"frame": f.index, "hands": hands})
            picture = hands_overlay(f.hands, f.image, render, labels=mode == DETECT, numbers=f.ids)
            for v in videos:
                v.add(picture)
    finally:  # the writers are always closed (an ffmpeg process each); nothing is kept without a hand
        files = [p for p in (v.close(keep=first_hands is not None) for v in videos) if p is not None]
    if count == 0:
        raise ValueError(f"{Path(video).name}: no frames")
    if first_hands is None:
        return ServeResult(f"{NO_HAND} in {count} frames")
    (out / "hands_per_frame.json").write_text(json.dumps({"fps": fps, "frames": per_frame}))
    view, distance = _viewer_mesh(first_hands, out / "hands_view.glb")
    files += [out / "hands_per_frame.json", view]
    tracks = sorted({t for fr in per_frame for t in (h["track_id"] for h in fr["hands"])})
    message = (
        f"hands found in {with_hands} of {count} frames ({len(tracks)} tracked)"
        if mode == DETECT
        else f"{count} frames, the whole image as one {hand_side} hand"
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
    )


class RequestFolders:
    """One fresh output folder per request under ``root``; folders older than ``keep_seconds`` are
    removed when a new one is made (the page has its own copies of what it shows by then)."""

    def __init__(self, root: str | os.PathLike, keep_seconds: float = KEEP_SECONDS) -> None:
        self.root, self.keep_seconds = Path(root), float(keep_seconds)
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            now = time.time()
            for old in self.root.iterdir():
                try:
                    if old.is_dir() and now - old.stat().st_mtime > self.keep_seconds:
                        shutil.rmtree(old, ignore_errors=True)
                except OSError:
                    pass  # removed meanwhile
            return Path(tempfile.mkdtemp(prefix="request-", dir=self.root))


def build_app(rec, out_root: str | os.PathLike, render=None, title: str = "HandSSCA"):
    """The gradio Blocks of the page for reconstructor ``rec``; request outputs go under ``out_root``."""
    gr = import_gradio()

    folders = RequestFolders(out_root)
    can_detect = hasattr(rec, "reconstruct_all")

    def answer(work, shown):
        """The page's outputs for one request: ``work()`` -> ServeResult; its errors said on the page."""
        try:
            result = work()
        except (ValueError, OSError) as e:  # an unreadable image or video and the like
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            raise gr.Error(lines[0] if lines else type(e).__name__) from None
        return (
            f"**{result.message}**",
            shown(result),
            gr.update(value=str(result.viewer_mesh), camera_position=(90, 90, result.view_distance))
            if result.viewer_mesh
            else None,
            [str(f) for f in result.files] or None,
            result.info,
        )

    def run(image_path, mode, side):
        if not image_path:
            raise gr.Error("drop an image first")
        side = (side or "right").lower()
        return answer(
            lambda: reconstruct_image(rec, image_path, mode or WHOLE, side, folders.new(), render),
            lambda r: r.overlay,
        )

    def run_video(video_path, mode, side, smooth):
        if not video_path:
            raise gr.Error("drop a video first")
        side = (side or "right").lower()
        return answer(
            lambda: reconstruct_video(rec, video_path, mode or WHOLE, side, folders.new(), render, bool(smooth)),
            lambda r: next((str(f) for f in r.files if f.suffix == ".gif"), None),
        )

    def mode_and_side(elem_id: str):
        """The 'hand box' choice and the side choice it shows for the whole image."""
        mode = gr.Radio(
            [DETECT, WHOLE] if can_detect else [WHOLE],
            value=DETECT if can_detect else WHOLE,
            label="hand box",
            elem_id=elem_id,
        )
        side = gr.Radio(["right", "left"], value="right", label="hand side (whole image)", visible=not can_detect)
        mode.change(lambda m: gr.update(visible=m == WHOLE), mode, side)
        return mode, side

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown(
            f"# {title}: 3D hands from a photo\nDrop an image, press **Reconstruct**. "
            "Meshes are in metres in the camera frame (x right, y down, z forward); joints in FreiHAND order."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="filepath", label="image", sources=["upload", "clipboard"], elem_id="input-image")
                mode, side = mode_and_side("mode")
                button = gr.Button("Reconstruct", variant="primary", elem_id="run")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                with gr.Row():
                    overlay = gr.Image(label="overlay", format="png", interactive=False, elem_id="overlay")
                    mesh = gr.Model3D(label="3D mesh (drag to rotate)", elem_id="mesh", height=420)
                files = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="files")
                info = gr.JSON(label="hands (JSON)", elem_id="info")
        button.click(run, [image, mode, side], [status, overlay, mesh, files, info], api_name="reconstruct")
        gr.Markdown(
            f"## A short video\nDrop a video (GIF always; mp4, mov, avi, webm with imageio-ffmpeg): its first "
            f"{MAX_VIDEO_FRAMES} frames are reconstructed, hands tracked from frame to frame."
        )
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.File(
                    label="video",
                    file_types=[".gif", ".mp4", ".mov", ".avi", ".webm", ".mkv"],
                    type="filepath",
                    elem_id="input-video",
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
        )
    return app


def serve(
    checkpoint: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 7860,
    hand_model: str | None = None,
    device: str | None = None,
) -> None:
    """Run the page on http://host:port until interrupted. Nothing is fetched from outside: no analytics,
    no version check, no share link; the page's own files come with the gradio package."""
    gr = import_gradio()  # before the checkpoint is read: say what is missing first
    from handssca.inference import HandReconstructor

    rec = HandReconstructor.from_checkpoint(checkpoint, hand_model, device)
    root = Path(tempfile.mkdtemp(prefix="handssca-serve-"))
    app = None
    previous = _sigterm_interrupts()
    try:
        app = build_app(rec, root)
        app.queue(default_concurrency_limit=1)  # one reconstruction at a time: the CPU is shared
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
            )
        except OSError as e:  # gradio's "Cannot find empty port ..."
            why = str(e).split(". ")[0]
            raise OSError(f"cannot listen on {host}:{port} ({why}); is it in use? choose another --port") from None
        print(f"handssca serve: http://{host}:{port} (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a normal stop
        print("handssca serve: stopped", flush=True)
    finally:
        if app is not None:
            app.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(root, ignore_errors=True)


def _sigterm_interrupts():
    """In the main thread, make SIGTERM stop the page like Ctrl-C does (its files removed); returns the
    previous handler (None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    return signal.signal(signal.SIGTERM, handler)
