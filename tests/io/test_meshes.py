import json

import numpy as np
import pytest

from handssca.io.meshes import write_glb, write_obj, write_ply

V = np.array([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5], [0.0, 0.1, 0.5]])
F = np.array([[0, 1, 2]])
N = np.array([[0.0, 0.0, 1.0]] * 3)


def test_obj_and_ply(tmp_path):
    text = write_obj(tmp_path / "a.obj", V, F).read_text().splitlines()
    assert text[1:] == [
        "v 0.000000 0.000000 0.500000",
        "v 0.100000 0.000000 0.500000",
        "v 0.000000 0.100000 0.500000",
        "f 1 2 3",
    ]
    data = write_ply(tmp_path / "a.ply", V, F).read_bytes()
    header, body = data.split(b"end_header\n")
    assert b"element vertex 3" in header and b"element face 1" in header
    assert len(body) == 3 * 12 + 1 + 12


def test_glb_holds_each_mesh_with_its_normals(tmp_path):
    data = write_glb(tmp_path / "a.glb", [(V, F, N, (1.0, 0.5, 0.0)), (V + 1, F, N, (0.0, 0.0, 1.0))]).read_bytes()
    assert data[:4] == b"glTF" and int.from_bytes(data[8:12], "little") == len(data)
    n = int.from_bytes(data[12:16], "little")
    doc = json.loads(data[20 : 20 + n])
    assert len(doc["meshes"]) == 2 and doc["meshes"][1]["primitives"][0]["attributes"]["NORMAL"] == 4
    with pytest.raises(ValueError, match="one normal per vertex"):
        write_glb(tmp_path / "b.glb", [(V, F, N[:2], (1.0, 1.0, 1.0))])
