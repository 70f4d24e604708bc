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
    header = (
        f"ply\nformat binary_little_endian 1.0\ncomment handssca hand mesh, metres\nelement vertex {len(vertices)}\n"
        f"property float x\nproperty float y\nproperty float z\nelement face {len(faces)}\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    face_rec = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_rec["n"], face_rec["v"] = 3, faces
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.asarray(vertices, dtype="<f4").tobytes())
        f.write(face_rec.tobytes())
    return path


def save_prediction(
    pred,
    image: np.ndarray,
    out_dir: str | os.PathLike,
    stem: str,
    render=None,
    source: str | os.PathLike | None = None,
    pictures: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Path]:
    """Write <stem>.obj, .ply, .json, _overlay.png and _side.png for one HandPrediction.

    ``image``: the picture the hand was found in, at its original size (``pred.image_size``) or reduced
    (a working copy of a large file); the overlay is drawn at that size (at most
    :data:`handssca.pictures.prediction.OVERLAY_MAX_SIDE` pixels long), while the JSON keeps
    original-image pixels. ``source``: the input file, recorded in the JSON. ``pictures``: the
    (overlay, side view) of :func:`~handssca.pictures.prediction.prediction_pictures` when the caller
    already drew them.
    """
    from PIL import Image

    from handssca.pictures.prediction import prediction_pictures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [
        write_obj(out / f"{stem}.obj", pred.vertices, pred.faces),
        write_ply(out / f"{stem}.ply", pred.vertices, pred.faces),
    ]
    info = pred.to_json()
    if source is not None:
        info["input_file"] = str(source)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=1))
    files.append(out / f"{stem}.json")
    overlay, side = pictures if pictures is not None else prediction_pictures(pred, image, render)
    Image.fromarray(overlay).save(out / f"{stem}_overlay.png")
    files.append(out / f"{stem}_overlay.png")
    Image.fromarray(side).save(out / f"{stem}_side.png")
    files.append(out / f"{stem}_side.png")
    return files
