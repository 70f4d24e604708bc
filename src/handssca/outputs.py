"""Files written for a reconstructed hand: meshes (.obj, .ply), JSON, overlay and side-view pictures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    path = Path(path)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("# handssca hand mesh, metres, OpenCV camera frame\n" + "\n".join(lines) + "\n")
    return path


def write_ply(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Binary little-endian PLY."""
    path = Path(path)
    header = (f"ply\nformat binary_little_endian 1.0\ncomment handssca hand mesh, metres\nelement vertex {len(vertices)}\n"
              f"property float x\nproperty float y\nproperty float z\nelement face {len(faces)}\n"
              "property list uchar int vertex_indices\nend_header\n")  # fmt: skip
    face_rec = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_rec["n"], face_rec["v"] = 3, faces
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.asarray(vertices, dtype="<f4").tobytes())
        f.write(face_rec.tobytes())
    return path


def side_view(vertices: np.ndarray, faces: np.ndarray, size: int = 320, render=None) -> np.ndarray:
    """The mesh seen from its side (rotated 90 degrees about the image's vertical axis), on grey."""
    from handssca.pictures import orbit_view
    from handssca.render.raster import render_mesh

    v, K = orbit_view(np.asarray(vertices, dtype=np.float64), 90.0, 0.0, size)
    if render is not None:
        r = render(v, faces, K, (size, size), color=(0.55, 0.75, 0.95))
        img = np.full((size, size, 3), 0.92, np.float32)
        img[r.mask] = r.rgb[r.mask]
        return img
    return render_mesh(v, faces, K, (size, size), color=(0.55, 0.75, 0.95)).rgb


#: The longest side of a written overlay picture; larger inputs get an overlay reduced to it.
OVERLAY_MAX_SIDE = 2048


def overlay_frame(image_hw: tuple[int, int], picture_hw: tuple[int, int], max_side: int = OVERLAY_MAX_SIDE):
    """Size (h, w) of the overlay of a ``picture_hw`` picture of an ``image_hw`` image (the same view at
    any resolution), and the (3, 3) map from the image's pixels to the overlay's (pixel centres at integers)."""
    H, W = image_hw
    ph, pw = picture_hw
    r = min(1.0, max_side / max(ph, pw))
    oh, ow = max(1, round(ph * r)), max(1, round(pw * r))
    sx, sy = W / ow, H / oh
    A = np.array([[1 / sx, 0.0, 0.5 / sx - 0.5], [0.0, 1 / sy, 0.5 / sy - 0.5], [0.0, 0.0, 1.0]])
    return (oh, ow), A


def save_prediction(pred, image: np.ndarray, out_dir: str | os.PathLike, stem: str, render=None,
                    source: str | os.PathLike | None = None) -> list[Path]:  # fmt: skip
    """Write <stem>.obj, .ply, .json, _overlay.png and _side.png for one HandPrediction.

    ``image``: the picture the hand was found in, at its original size (``pred.image_size``) or reduced
    (a working copy of a large file); the overlay is drawn at that size, at most :data:`OVERLAY_MAX_SIDE`
    pixels long, while the JSON keeps original-image pixels. ``source``: the input file, recorded in the JSON.
    """
    from PIL import Image

    from handssca.pictures import draw_joints
    from handssca.render.overlay import overlay_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_obj(out / f"{stem}.obj", pred.vertices, pred.faces), write_ply(out / f"{stem}.ply", pred.vertices, pred.faces)]
    info = pred.to_json()
    if source is not None:
        info["input_file"] = str(source)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=1))
    files.append(out / f"{stem}.json")
    (oh, ow), A = overlay_frame(tuple(pred.image_size), image.shape[:2])
    if (oh, ow) != image.shape[:2]:
        picture = Image.fromarray(np.ascontiguousarray(image))
        image = np.asarray(picture.resize((ow, oh), Image.Resampling.BILINEAR, reducing_gap=3.0))
    K = A @ np.asarray(pred.K, dtype=np.float64)
    joints_2d = np.asarray(pred.joints_2d, dtype=np.float64) @ A[:2, :2].T + A[:2, 2]
    over = overlay_mesh(image.astype(np.float32) / 255.0, pred.vertices, pred.faces, K, render, alpha=0.7)
    over = draw_joints(over, joints_2d, color=(230, 40, 40), radius=max(2, int(max(image.shape[:2]) / 200)))
    Image.fromarray(over).save(out / f"{stem}_overlay.png")
    files.append(out / f"{stem}_overlay.png")
    side = side_view(pred.vertices, pred.faces, render=render)
    Image.fromarray((np.clip(side, 0, 1) * 255).astype(np.uint8)).save(out / f"{stem}_side.png")
    files.append(out / f"{stem}_side.png")
    return files
