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


def save_prediction(pred, image: np.ndarray, out_dir: str | os.PathLike, stem: str, render=None) -> list[Path]:
    """Write <stem>.obj, .ply, .json, _overlay.png and _side.png for one HandPrediction."""
    from PIL import Image

    from handssca.pictures import draw_joints
    from handssca.render.overlay import overlay_mesh

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [write_obj(out / f"{stem}.obj", pred.vertices, pred.faces), write_ply(out / f"{stem}.ply", pred.vertices, pred.faces)]
    (out / f"{stem}.json").write_text(json.dumps(pred.to_json(), indent=1))
    files.append(out / f"{stem}.json")
    over = overlay_mesh(image.astype(np.float32) / 255.0, pred.vertices, pred.faces, pred.K, render, alpha=0.7)
    over = draw_joints(over, pred.joints_2d, color=(230, 40, 40), radius=max(2, int(max(image.shape[:2]) / 200)))
    Image.fromarray(over).save(out / f"{stem}_overlay.png")
    files.append(out / f"{stem}_overlay.png")
    side = side_view(pred.vertices, pred.faces, render=render)
    Image.fromarray((np.clip(side, 0, 1) * 255).astype(np.uint8)).save(out / f"{stem}_side.png")
    files.append(out / f"{stem}_side.png")
    return files
