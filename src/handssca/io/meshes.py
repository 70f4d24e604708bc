"""Mesh files: Wavefront .obj, binary .ply and binary glTF (.glb)."""

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


def write_glb(
    path: str | os.PathLike,
    meshes: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]],
) -> Path:
    """Binary glTF 2.0 (.glb) of one or more ``(vertices (V, 3), faces (F, 3), normals (V, 3), rgb in [0, 1])``
    meshes, each with its vertex normals (unit; e.g. :func:`handssca.render.raster.vertex_normals`) and its
    own matte PBR material. glTF's frame is OpenGL's (y up, z towards the viewer): convert camera-frame
    points with :func:`handssca.frames.opengl_to_opencv` (its own inverse)."""
    blob, views, accessors, gl_meshes, materials = bytearray(), [], [], [], []

    def add(array: np.ndarray, target: int, **accessor) -> int:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes, "target": target})
        blob.extend(array.tobytes())
        blob.extend(b"\0" * (-len(blob) % 4))
        accessors.append({"bufferView": len(views) - 1, "count": len(array), **accessor})
        return len(accessors) - 1

    for vertices, faces, normals, rgb in meshes:
        v = np.ascontiguousarray(vertices, dtype="<f4")
        f = np.ascontiguousarray(faces, dtype="<u4")
        n = np.ascontiguousarray(normals, dtype="<f4")
        if n.shape != v.shape:
            raise ValueError(f"write_glb: expected one normal per vertex {v.shape}; got {n.shape}")
        pos = add(v, 34962, componentType=5126, type="VEC3", min=v.min(0).tolist(), max=v.max(0).tolist())
        nrm = add(n, 34962, componentType=5126, type="VEC3")
        idx = add(f.reshape(-1), 34963, componentType=5125, type="SCALAR")
        materials.append(
            {
                "pbrMetallicRoughness": {"baseColorFactor": [*map(float, rgb), 1.0], "metallicFactor": 0.0},
                "doubleSided": True,
            }
        )
        primitive = {"attributes": {"POSITION": pos, "NORMAL": nrm}, "indices": idx, "material": len(materials) - 1}
        gl_meshes.append({"primitives": [primitive]})
    doc = {
        "asset": {"version": "2.0", "generator": "handssca"},
        "scene": 0,
        "scenes": [{"nodes": list(range(len(gl_meshes)))}],
        "nodes": [{"mesh": i} for i in range(len(gl_meshes))],
        "meshes": gl_meshes,
        "materials": materials,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = _glb_chunk(text, b"JSON") + _glb_chunk(bytes(blob), b"BIN\0")
    path = Path(path)
    path.write_bytes(b"glTF" + np.array([2, 12 + len(body)], dtype="<u4").tobytes() + body)
    return path


def _glb_chunk(data: bytes, kind: bytes) -> bytes:
    """One GLB chunk: length, type, data (already padded to 4 bytes)."""
    return np.array([len(data)], dtype="<u4").tobytes() + kind + data
