"""Safe loading of MANO-format hand models: official pickles (chumpy inside), plain pickles, .npz.

Pickles can run code, so they are read with the allow-list unpickler of ``io/safe_pickle.py``: only the classes
that the official MANO files (and plain numpy pickles, protocols 2 to 5) use can be constructed;
chumpy and scipy objects are replaced by inert holders that keep their state and are evaluated here
with numpy. Neither chumpy nor scipy is needed.

Every size read from a file (a sparse matrix's shape, a chumpy selection, an ``.npy`` header) is
checked against MANO's known shapes before anything is allocated from it, and every failure is one
:class:`HandModelFileError` naming the file (and the key, where there is one).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handssca.io.safe_pickle import _BadValue, _ChumpyCh, _ChumpySelect, _CscMatrix, _Inert, _int_shape, unpickle_bytes


class HandModelFileError(ValueError):
    """A hand-model file is unreadable, unsafe, incomplete or has arrays of the wrong shape."""


#: Bounds on what a MANO-format file may declare (MANO: 778 vertices, 1538 faces, 10 shape
#: components, 16 joints, 1554 pose samples). Generous, but far from exhausting memory.
MAX_VERTICES = 100_000
MAX_FACES = 1_000_000
MAX_SHAPE_COMPONENTS = 1_000
MAX_POSE_SAMPLES = 100_000
MAX_TIPS = 100
MAX_EXTRA_VALUES = 1_000_000
MAX_UVS = 400_000
MAX_TEXTURE_SIDE = 4096
NUM_JOINTS = 16
#: A dimension of an expected shape is a number, or a symbol with its bound ("V" is the template's).
_BOUNDS = {
    "V": MAX_VERTICES,
    "F": MAX_FACES,
    "S": MAX_SHAPE_COMPONENTS,
    "P": MAX_POSE_SAMPLES,
    "T": MAX_TIPS,
    "U": MAX_UVS,
    "H": MAX_TEXTURE_SIDE,
}
_SPECS: dict[str, tuple] = {
    "v_template": ("V", 3),
    "f": ("F", 3),
    "shapedirs": ("V", 3, "S"),
    "posedirs": ("V", 3, 9 * (NUM_JOINTS - 1)),
    "J_regressor": (NUM_JOINTS, "V"),
    "weights": ("V", NUM_JOINTS),
    "kintree_table": (2, NUM_JOINTS),
    "hands_components": (45, 45),
    "hands_mean": (45,),
    "hands_coeffs": ("P", 45),
    "tip_ids": ("T",),
    # optional texture mapping (the default hand): coordinates, their ids per face corner, RGBA albedo
    "uv": ("U", 2),
    "faces_uv": ("F", 3),
    "texture": ("H", "H", 4),
}
_EXTRA_PREFIX = "prior_"


def _is_known(key: str) -> bool:
    return key in _SPECS or key.startswith(_EXTRA_PREFIX)


def _shape_problem(key: str, shape: tuple, nv: int | None) -> str | None:
    """Why ``shape`` is not an acceptable shape for ``key`` (None when it is). ``nv``: V, when known."""
    if key.startswith(_EXTRA_PREFIX):
        if len(shape) > 4 or math.prod(shape) > MAX_EXTRA_VALUES:
            return f"expected at most 4 dimensions and at most {MAX_EXTRA_VALUES} values; found shape {shape}"
        return None
    spec = _SPECS[key]
    want = tuple(nv if d == "V" and nv is not None else d for d in spec)
    text = "(" + ", ".join(str(d) for d in want) + ("," if len(want) == 1 else "") + ")"
    free = [d for d in want if isinstance(d, str)]
    if free:
        text += " with " + ", ".join(f"{d} <= {_BOUNDS[d]}" for d in free)
    ok = len(shape) == len(want) and all(
        (0 <= n <= _BOUNDS[d]) if isinstance(d, str) else n == d for n, d in zip(shape, want)
    )
    return None if ok else f"expected shape {text}; found {shape}"


def _check_shape(path: str, key: str, shape: tuple, nv: int | None) -> None:
    problem = _shape_problem(key, tuple(int(n) for n in shape), nv)
    if problem is not None:
        raise HandModelFileError(f"{path}: key {key!r}: {problem}")


def _max_values(key: str, nv: int | None) -> int:
    if key.startswith(_EXTRA_PREFIX):
        return MAX_EXTRA_VALUES
    return math.prod(
        nv if d == "V" and nv is not None else _BOUNDS[d] if isinstance(d, str) else d for d in _SPECS[key]
    )


# ---------------------------------------------------------------------------- evaluating stored values


def _bounded_asarray(obj: object, path: str, key: str, limit: int) -> np.ndarray:
    """``np.asarray`` of a stored list/tuple, after counting what it holds: a pickle can repeat one
    object by reference, so a small file can describe a nested list of any size."""
    count, stack = 0, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            count += 1
            stack.extend(item)
        else:
            count += item.size if isinstance(item, np.ndarray) else 1
        if count > limit + 1024:
            raise HandModelFileError(f"{path}: key {key!r}: holds more than the {limit} values it may have")
    try:
        return np.asarray(obj)
    except (ValueError, TypeError) as e:
        raise HandModelFileError(f"{path}: key {key!r}: not an array ({e})") from None


def _int_array(obj: object, path: str, key: str, what: str, limit: int) -> np.ndarray:
    a = obj if isinstance(obj, np.ndarray) else _bounded_asarray(obj, path, key, limit)
    if not np.issubdtype(a.dtype, np.integer) or a.size > limit:
        raise HandModelFileError(
            f"{path}: key {key!r}: {what}: expected at most {limit} integers; found {a.dtype} {a.shape}"
        )
    return a.astype(np.int64)


def _evaluate_csc(obj: _CscMatrix, path: str, key: str, nv: int | None) -> np.ndarray:
    state = obj.state if isinstance(obj.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    if shape is None or not {"data", "indices", "indptr"} <= set(state):
        raise HandModelFileError(f"{path}: key {key!r}: sparse matrix without shape/data/indices/indptr")
    try:
        shape = _int_shape(shape, "sparse matrix shape")
    except _BadValue as e:
        raise HandModelFileError(f"{path}: key {key!r}: {e}") from None
    if len(shape) != 2:
        raise HandModelFileError(f"{path}: key {key!r}: expected a 2-D sparse matrix; found shape {shape}")
    _check_shape(path, key, shape, nv)  # before anything of that size is allocated
    rows, cols = shape
    n = rows * cols
    indptr = _int_array(state["indptr"], path, key, "indptr", cols + 1)
    if indptr.shape != (cols + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise HandModelFileError(
            f"{path}: key {key!r}: indptr: expected {cols + 1} non-decreasing offsets from 0; "
            f"found shape {indptr.shape}"
        )
    nnz = int(indptr[-1])
    indices = _int_array(state["indices"], path, key, "row indices", n)
    data = state["data"]
    data = data if isinstance(data, np.ndarray) else _bounded_asarray(data, path, key, n)
    if indices.shape != (nnz,) or data.shape != (nnz,) or nnz > n:
        raise HandModelFileError(
            f"{path}: key {key!r}: expected {nnz} row indices and data values (indptr's last offset); "
            f"found {indices.shape} and {data.shape}"
        )
    if not np.issubdtype(data.dtype, np.number):
        raise HandModelFileError(f"{path}: key {key!r}: data: expected numbers; found {data.dtype}")
    if nnz and (indices.min() < 0 or indices.max() >= rows):
        raise HandModelFileError(
            f"{path}: key {key!r}: row indices: expected values in [0, {rows}); found {indices.max()}"
        )
    dense = np.zeros(shape, dtype=np.float64)
    dense[indices, np.repeat(np.arange(cols), np.diff(indptr))] = data
    return dense


def _evaluate_select(obj: _ChumpySelect, path: str, key: str, nv: int | None) -> np.ndarray:
    state = obj.state if isinstance(obj.state, dict) else {}
    if not {"a", "idxs"} <= set(state):
        raise HandModelFileError(f"{path}: key {key!r}: chumpy Select without 'a' and 'idxs'")
    base = state["a"]
    if not isinstance(base, (np.ndarray, _ChumpyCh)):
        raise HandModelFileError(
            f"{path}: key {key!r}: chumpy Select over {type(base).__name__}; expected an array or Ch"
        )
    base = _evaluate(base, path, key, None, limit=_max_values(key, nv) * 100)
    limit = _max_values(key, nv)
    idxs = _int_array(state["idxs"], path, key, "chumpy Select indices", limit).ravel()
    if idxs.size and (idxs.min() < 0 or idxs.max() >= base.size):
        raise HandModelFileError(
            f"{path}: key {key!r}: chumpy Select indices: expected values below {base.size} (the selected array's size)"
        )
    shape = state.get("preferred_shape")
    if shape is None:
        return base.ravel()[idxs]
    try:
        shape = _int_shape(shape, "chumpy Select preferred shape")
    except _BadValue as e:
        raise HandModelFileError(f"{path}: key {key!r}: {e}") from None
    if math.prod(shape) != idxs.size:
        raise HandModelFileError(
            f"{path}: key {key!r}: chumpy Select preferred shape {shape} does not hold {idxs.size} values"
        )
    return base.ravel()[idxs].reshape(shape)


def _evaluate(obj: object, path: str, key: str, nv: int | None, limit: int | None = None) -> np.ndarray:
    """Turn a stored value (array, chumpy object, csc holder, list) into an array, bounded by ``key``'s shape."""
    if isinstance(obj, np.ndarray):
        return obj
    limit = limit if limit is not None else _max_values(key, nv)
    if isinstance(obj, _ChumpyCh):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise HandModelFileError(f"{path}: key {key!r}: chumpy Ch without its 'x' array")
        x = state["x"]
        return x if isinstance(x, np.ndarray) else _bounded_asarray(x, path, key, limit)
    if isinstance(obj, _ChumpySelect):
        return _evaluate_select(obj, path, key, nv)
    if isinstance(obj, _CscMatrix):
        return _evaluate_csc(obj, path, key, nv)
    if isinstance(obj, _Inert):
        raise HandModelFileError(f"{path}: key {key!r}: unsupported stored object {obj.kind}")
    return _bounded_asarray(obj, path, key, limit)


@dataclass
class HandModelData:
    """The arrays of a MANO-format hand model (numpy, float64 geometry, metres)."""

    v_template: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3) int64
    shapedirs: np.ndarray  # (V, 3, S)
    posedirs: np.ndarray  # (V, 3, 9*(J-1))
    J_regressor: np.ndarray  # (J, V)
    weights: np.ndarray  # (V, J)
    parents: np.ndarray  # (J,) int64, root -1
    hands_components: np.ndarray  # (45, 45) rows are components
    hands_mean: np.ndarray  # (45,)
    hands_coeffs: np.ndarray | None = None  # (P, 45) poses in PCA coefficients, a pose sample
    tip_ids: np.ndarray | None = None  # (5,) thumb, index, middle, ring, pinky vertex ids, if the file has them
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the default hand's pose-prior axes/limits
    name: str = ""
    uv: np.ndarray | None = None  # (U, 2) texture coordinates in [0, 1], v = 0 at the image's bottom (OBJ)
    faces_uv: np.ndarray | None = None  # (F, 3) int64 ids into uv, parallel to faces
    texture: np.ndarray | None = None  # (H, W, 4) uint8 albedo, row 0 at the top; alpha 255 on skin, 0 on nails

    def content_hash(self) -> str:
        """sha256 (hex) of the arrays that make this model's meshes (:data:`HASHED_ARRAYS`): each one's
        name, shape and values (little-endian float64; int64 for faces, parents and tip ids). The file's
        path, name and format do not enter it: the same MANO model hashes the same from an official
        pickle, a plain pickle or an ``.npz``, wherever it lives. Texture, pose samples and prior extras
        are left out (they do not change a mesh)."""
        h = hashlib.sha256(b"handssca hand model arrays v1\n")
        for name in HASHED_ARRAYS:
            a = getattr(self, name)
            if a is None:
                h.update(f"{name}: none\n".encode())
                continue
            a = np.ascontiguousarray(a, dtype="<i8" if name in _INTEGER_ARRAYS else "<f8")
            h.update(f"{name}: {a.shape}\n".encode())
            h.update(a.tobytes())
        return h.hexdigest()


#: The arrays of a :class:`HandModelData` that :meth:`HandModelData.content_hash` covers.
HASHED_ARRAYS = (
    "v_template",
    "faces",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "parents",
    "hands_components",
    "hands_mean",
    "tip_ids",
)
_INTEGER_ARRAYS = ("faces", "parents", "tip_ids")


_REQUIRED = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "weights",
    "kintree_table",
    "hands_components",
    "hands_mean",
)


def _npy_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple, np.dtype]:
    fmt = np.lib.format
    with zf.open(name) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


def _load_npz(raw: bytes, path: Path) -> dict[str, object]:
    """The known members of an ``.npz``; each member's header is checked before its data is read."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
            missing = [k for k in _REQUIRED if k not in members]
            if missing:
                raise HandModelFileError(f"{path}: missing keys {missing}; a MANO-format model needs {list(_REQUIRED)}")
            keys = ["v_template"] + [k for k in members if _is_known(k) and k != "v_template"]  # unknown: not read
            nv, out = None, {}
            for key in keys:
                try:
                    shape, dtype = _npy_header(zf, members[key])
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                    raise HandModelFileError(f"{path}: key {key!r}: not a readable .npy member ({e})") from None
                if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
                    raise HandModelFileError(f"{path}: key {key!r}: expected a numeric array; found dtype {dtype}")
                _check_shape(str(path), key, shape, nv)
                if key == "v_template":
                    nv = shape[0]
                try:
                    with zf.open(members[key]) as f:
                        out[key] = np.lib.format.read_array(f, allow_pickle=False)
                except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                    raise HandModelFileError(f"{path}: key {key!r}: not a readable .npy member ({e})") from None
            return out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        if isinstance(e, HandModelFileError):
            raise
        raise HandModelFileError(f"{path}: not a readable .npz ({e})") from None


def _load_dict(path: Path) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HandModelFileError(f"{path}: cannot read ({e.strerror})") from None
    if path.suffix == ".npz" or raw[:2] == b"PK":
        return _load_npz(raw, path)
    obj = unpickle_bytes(raw, path, "MANO pickle", HandModelFileError)
    if not isinstance(obj, dict):
        raise HandModelFileError(f"{path}: expected a pickled dict of arrays; found {type(obj).__name__}")
    return obj


_TEXTURE_KEYS = ("uv", "faces_uv", "texture")


def _texture_mapping(raw: dict, path: Path, faces: np.ndarray, get) -> tuple:
    """(uv, faces_uv, texture) when the file has all three keys, else (None, None, None); checked."""
    present = [k for k in _TEXTURE_KEYS if k in raw]
    if not present:
        return None, None, None
    if len(present) < len(_TEXTURE_KEYS):
        missing = [k for k in _TEXTURE_KEYS if k not in raw]
        raise HandModelFileError(f"{path}: has {present} but not {missing}; a texture mapping needs all three")
    texture = get("texture", None)
    if not np.issubdtype(texture.dtype, np.integer) or texture.min() < 0 or texture.max() > 255:
        raise HandModelFileError(
            f"{path}: key 'texture': expected 8-bit texels (integers 0-255); found dtype {texture.dtype}"
            f" with values {texture.min()}..{texture.max()}"
        )
    uv = get("uv")
    if not np.isfinite(uv).all():
        raise HandModelFileError(f"{path}: key 'uv': contains NaN or inf")
    faces_uv = get("faces_uv", np.int64)
    if faces_uv.shape != faces.shape:
        raise HandModelFileError(
            f"{path}: key 'faces_uv': expected one id per face corner {faces.shape}; found {faces_uv.shape}"
        )
    if faces_uv.size and (faces_uv.min() < 0 or faces_uv.max() >= len(uv)):
        raise HandModelFileError(
            f"{path}: key 'faces_uv': expected ids into 'uv' (0..{len(uv) - 1}); found {faces_uv.min()}..{faces_uv.max()}"
        )
    return uv, faces_uv, texture.astype(np.uint8)


def load_hand_model_data(path: str | os.PathLike, name: str | None = None) -> HandModelData:
    """Read and validate a MANO-format file (official pkl, plain-numpy pkl or npz)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such hand-model file")
    raw = _load_dict(path)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise HandModelFileError(f"{path}: missing keys {missing}; a MANO-format model needs {list(_REQUIRED)}")
    nv: int | None = None

    def get(key: str, dtype=np.float64) -> np.ndarray:
        """The stored value of ``key``, evaluated, its shape checked, then converted to ``dtype`` (None: kept)."""
        a = _evaluate(raw[key], str(path), key, nv)
        ndim = len(_SPECS[key])
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.number):
            raise HandModelFileError(f"{path}: key {key!r}: expected a {ndim}-D numeric array; found shape {a.shape}")
        _check_shape(str(path), key, a.shape, nv)
        return a if dtype is None else a.astype(dtype)

    v = get("v_template")
    nv = v.shape[0]
    kin = _evaluate(raw["kintree_table"], str(path), "kintree_table", nv)
    if kin.ndim != 2 or kin.shape[0] != 2 or not np.issubdtype(kin.dtype, np.number):
        raise HandModelFileError(f"{path}: key 'kintree_table': expected shape (2, J); found {kin.shape}")
    nj = kin.shape[1]
    parents = kin[0].astype(np.int64)
    parents[0] = -1  # stored as uint32 -1
    if nj != NUM_JOINTS or np.any(parents[1:] >= np.arange(1, nj)) or np.any(parents[1:] < 0):
        raise HandModelFileError(
            f"{path}: key 'kintree_table': expected MANO's 16-joint tree; found parents {parents.tolist()[:32]}"
        )
    data = {
        key: get(key, np.int64 if key == "f" else np.float64)
        for key in ("f", "weights", "J_regressor", "hands_components", "hands_mean")
    }
    faces = data["f"]
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise HandModelFileError(f"{path}: key 'f': expected (F, 3) vertex indices below {nv}; found {faces.shape}")
    shapedirs = get("shapedirs")
    posedirs = get("posedirs")
    coeffs = get("hands_coeffs") if "hands_coeffs" in raw else None
    tips = get("tip_ids", np.int64) if "tip_ids" in raw else None
    uv, faces_uv, texture = _texture_mapping(raw, path, faces, get)
    extras = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.startswith(_EXTRA_PREFIX):
            a = _evaluate(value, str(path), key, nv)
            _check_shape(str(path), key, a.shape, nv)
            extras[key[len(_EXTRA_PREFIX) :]] = a
    for key, a in (("v_template", v), ("shapedirs", shapedirs), ("weights", data["weights"])):
        if not np.all(np.isfinite(a)):
            raise HandModelFileError(f"{path}: key {key!r}: contains NaN or inf")
    return HandModelData(
        v_template=v,
        faces=faces,
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=data["J_regressor"],
        weights=data["weights"],
        parents=parents,
        hands_components=data["hands_components"],
        hands_mean=data["hands_mean"],
        hands_coeffs=coeffs,
        tip_ids=tips,
        extras=extras,
        name=name or path.name,
        uv=uv,
        faces_uv=faces_uv,
        texture=texture,
    )
