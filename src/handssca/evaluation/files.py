"""Reading and writing the benchmarks' prediction and annotation files, with clear errors.

FreiHAND and HO3D: ``pred.json`` = ``[xyz_list (N,21,3), verts_list (N,V,3)]`` in metres (HO3D: in
the OpenGL frame and HO3D joint order, usually zipped). DexYCB: a text file with one line per image,
``image_id,x1,y1,z1,...,x21,y21,z21`` in millimetres.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from handssca.frames import opengl_to_opencv
from handssca.hand.joint_orders import FREIHAND_TO_HO3D
from handssca.io.atomic import atomic_path, atomic_write_bytes

#: HO3D's OpenCV <-> OpenGL conversion (a 180 degree rotation about x).


class FileFormatError(ValueError):
    """A prediction or annotation file is not in the expected format."""


def _load_json(path: str | os.PathLike) -> object:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".json")]
                if len(names) != 1:
                    raise FileFormatError(f"{path}: expected exactly one .json inside the zip; found {names}")
                return json.loads(zf.read(names[0]).decode("utf-8"))
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid JSON ({e})") from None
    except zipfile.BadZipFile as e:
        raise FileFormatError(f"{path}: not a valid zip file ({e})") from None
    except RecursionError:
        raise FileFormatError(
            f"{path}: JSON lists nested too deep for the reader; expected (N, K, 3) point lists, "
            "nested at most 4 deep as [xyz_list, verts_list]"
        ) from None


def _as_points(obj: object, what: str, points: int | None, count: int | None) -> np.ndarray:
    try:
        arr = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise FileFormatError(f"{what}: expected a list of (K, 3) point lists with numbers only") from None
    if arr.ndim != 3 or arr.shape[-1] != 3 or (points is not None and arr.shape[1] != points):
        k = points if points is not None else "K"
        raise FileFormatError(f"{what}: expected shape (N, {k}, 3); found {arr.shape}")
    if count is not None and arr.shape[0] != count:
        raise FileFormatError(f"{what}: expected {count} samples; found {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise FileFormatError(f"{what}: non-finite value (NaN or inf) in sample {bad}")
    return arr


def read_pred_json(
    path: str | os.PathLike, count: int | None = None, num_verts: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a FreiHAND/HO3D ``pred.json`` (or a zip holding it): returns joints (N,21,3), verts (N,V,3)."""
    obj = _load_json(path)
    if not isinstance(obj, list) or len(obj) != 2:
        raise FileFormatError(f"{path}: expected a JSON list of two lists [xyz_list, verts_list]")
    joints = _as_points(obj[0], f"{path} (xyz_list)", 21, count)
    verts = _as_points(obj[1], f"{path} (verts_list)", num_verts, joints.shape[0])
    return joints, verts


def read_points_json(path: str | os.PathLike, points: int | None = None, count: int | None = None) -> np.ndarray:
    """Read an annotation file such as ``evaluation_xyz.json`` / ``evaluation_verts.json``: (N, K, 3)."""
    return _as_points(_load_json(path), str(path), points, count)


def _pred_json_bytes(joints: np.ndarray, verts: np.ndarray) -> bytes:
    joints = _as_points(joints, "joints", 21, None)
    verts = _as_points(verts, "verts", None, joints.shape[0])
    return json.dumps([joints.tolist(), verts.tolist()]).encode("utf-8")


def write_freihand_pred(path: str | os.PathLike, joints: np.ndarray, verts: np.ndarray) -> Path:
    """Write a FreiHAND ``pred.json``. joints (N,21,3) FreiHAND order, verts (N,V,3); metres, OpenCV."""
    path = Path(path)
    atomic_write_bytes(path, _pred_json_bytes(joints, verts))
    return path


def write_ho3d_pred(
    path: str | os.PathLike, joints: np.ndarray, verts: np.ndarray, gt_root: np.ndarray | None = None
) -> Path:
    """Write an HO3D submission from package conventions (FreiHAND order, OpenCV frame, metres).

    With ``gt_root`` (N,3, OpenCV, metres: the wrist given with HO3D's evaluation split) both joints
    and vertices are first translated so the predicted wrist sits on it, as HandOccNet does. The file
    holds OpenGL coordinates in HO3D joint order; a path ending in ``.zip`` gets ``pred.json`` zipped.
    """
    joints = np.asarray(joints, dtype=np.float64)
    verts = np.asarray(verts, dtype=np.float64)
    if gt_root is not None:
        shift = np.asarray(gt_root, dtype=np.float64)[:, None, :] - joints[:, :1, :]
        joints, verts = joints + shift, verts + shift
    data = _pred_json_bytes(opengl_to_opencv(joints[:, FREIHAND_TO_HO3D]), opengl_to_opencv(verts))
    path = Path(path)
    if path.suffix == ".zip":
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("pred.json", data)
    else:
        atomic_write_bytes(path, data)
    return path


def write_dexycb_results(path: str | os.PathLike, ids: Iterable[int], joints: np.ndarray) -> Path:
    """Write a DexYCB toolkit result file. joints (N,21,3) in metres, FreiHAND(=DexYCB) order, OpenCV."""
    joints = _as_points(joints, "joints", 21, None) * 1000.0
    ids = [int(i) for i in ids]
    if len(ids) != len(joints):
        raise ValueError(f"expected one id per sample; got {len(ids)} ids for {len(joints)} samples")
    lines = [",".join([str(i)] + [f"{v:.6f}" for v in j.ravel()]) for i, j in zip(ids, joints)]
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode("ascii"))
    return Path(path)


def read_dexycb_results(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """Read a DexYCB result/GT text file: {image_id: (21,3) millimetres}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out: dict[int, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split(",")
            if len(fields) != 64:
                raise FileFormatError(
                    f"{path}:{lineno}: expected 64 comma-separated values (id + 21x3 mm); found {len(fields)}"
                )
            try:
                image_id = int(fields[0])
                xyz = np.array([float(v) for v in fields[1:]], dtype=np.float64).reshape(21, 3)
            except ValueError:
                raise FileFormatError(f"{path}:{lineno}: expected an integer id and 63 numbers") from None
            if not np.all(np.isfinite(xyz)):
                raise FileFormatError(f"{path}:{lineno}: non-finite value (NaN or inf) for image {image_id}")
            if image_id in out:
                raise FileFormatError(f"{path}:{lineno}: image id {image_id} appears twice")
            out[image_id] = xyz
    if not out:
        raise FileFormatError(f"{path}: no result lines")
    return out
