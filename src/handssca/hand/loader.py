"""Safe loading of MANO-format hand models: official pickles (chumpy inside), plain pickles, .npz.

Pickles can run code, so they are read with an allow-list unpickler: only the handful of classes
that the official MANO files use can be constructed; chumpy and scipy objects are replaced by inert
holders that keep their state and are evaluated here with numpy. Neither chumpy nor scipy is needed.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class HandModelFileError(ValueError):
    """A hand-model file is unreadable, unsafe, incomplete or has arrays of the wrong shape."""


class _Inert:
    """Stands in for a chumpy/scipy object; keeps the pickled state for evaluation by numpy."""

    kind = "object"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state: object = None

    def __setstate__(self, state):
        self.state = state


class _ChumpyCh(_Inert):
    kind = "chumpy.Ch"


class _ChumpySelect(_Inert):
    kind = "chumpy.Select"


class _CscMatrix(_Inert):
    kind = "csc_matrix"


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_scalar,
    ("builtins", "set"): lambda: set,
    ("__builtin__", "set"): lambda: set,
    ("_codecs", "encode"): lambda: _codecs_encode,
    ("chumpy.ch", "Ch"): lambda: _ChumpyCh,
    ("chumpy.reordering", "Select"): lambda: _ChumpySelect,
    ("scipy.sparse.csc", "csc_matrix"): lambda: _CscMatrix,
    ("scipy.sparse._csc", "csc_matrix"): lambda: _CscMatrix,
    ("scipy.sparse", "csc_matrix"): lambda: _CscMatrix,
}


def _numpy_scalar(dtype, data):
    from numpy._core.multiarray import scalar

    return scalar(dtype, data)


def _codecs_encode(obj, encoding="latin1"):
    import codecs

    return codecs.encode(obj, encoding)


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._path = path

    def find_class(self, module: str, name: str):
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise HandModelFileError(
                f"{self._path}: refusing to load {module}.{name}: not one of the classes the allow-list accepts "
                "(a pickle can run code; only numpy arrays, chumpy Ch/Select and scipy csc_matrix are allowed)"
            )
        return factory()

    def persistent_load(self, pid):
        raise HandModelFileError(f"{self._path}: persistent ids are not allowed in a hand-model pickle")


def _evaluate(obj: object, path: str, key: str) -> np.ndarray:
    """Turn a stored value (array, chumpy object, csc holder) into a dense float array."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, _ChumpyCh):
        state = obj.state if isinstance(obj.state, dict) else {}
        if "x" not in state:
            raise HandModelFileError(f"{path}: key {key!r}: chumpy Ch without its 'x' array")
        return np.asarray(state["x"])
    if isinstance(obj, _ChumpySelect):
        state = obj.state if isinstance(obj.state, dict) else {}
        if not {"a", "idxs"} <= set(state):
            raise HandModelFileError(f"{path}: key {key!r}: chumpy Select without 'a' and 'idxs'")
        base = _evaluate(state["a"], path, key)
        out = base.ravel()[np.asarray(state["idxs"], dtype=np.int64)]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if isinstance(obj, _CscMatrix):
        state = obj.state if isinstance(obj.state, dict) else {}
        shape = state.get("_shape", state.get("shape"))
        if shape is None or not {"data", "indices", "indptr"} <= set(state):
            raise HandModelFileError(f"{path}: key {key!r}: sparse matrix without shape/data/indices/indptr")
        dense = np.zeros(tuple(shape), dtype=np.float64)
        indptr, indices, data = (np.asarray(state[k]) for k in ("indptr", "indices", "data"))
        for col in range(dense.shape[1]):
            lo, hi = indptr[col], indptr[col + 1]
            dense[indices[lo:hi], col] = data[lo:hi]
        return dense
    if isinstance(obj, _Inert):
        raise HandModelFileError(f"{path}: key {key!r}: unsupported stored object {obj.kind}")
    return np.asarray(obj)


def safe_pickle_load(path: str | os.PathLike) -> object:
    """Unpickle a data file (e.g. HO3D's meta/*.pkl, Python 2 pickles of numpy arrays) with the allow-list."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HandModelFileError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return _SafeUnpickler(io.BytesIO(raw), str(path)).load()
    except HandModelFileError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise HandModelFileError(f"{path}: not a valid (or a truncated) pickle ({type(e).__name__}: {e})") from None


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


_REQUIRED = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
             "hands_components", "hands_mean")  # fmt: skip


def _load_dict(path: Path) -> dict[str, object]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise HandModelFileError(f"{path}: cannot read ({e.strerror})") from None
    if path.suffix == ".npz" or raw[:2] == b"PK":
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
            raise HandModelFileError(f"{path}: not a readable .npz ({e})") from None
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), str(path)).load()
    except HandModelFileError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise HandModelFileError(f"{path}: not a valid (or a truncated) MANO pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise HandModelFileError(f"{path}: expected a pickled dict of arrays; found {type(obj).__name__}")
    return obj


def load_hand_model_data(path: str | os.PathLike, name: str | None = None) -> HandModelData:
    """Read and validate a MANO-format file (official pkl, plain-numpy pkl or npz)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such hand-model file")
    raw = _load_dict(path)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise HandModelFileError(f"{path}: missing keys {missing}; a MANO-format model needs {list(_REQUIRED)}")
    arr = {k: _evaluate(v, str(path), k) for k, v in raw.items() if k not in ("bs_style", "bs_type")}

    def get(key: str, ndim: int, dtype=np.float64) -> np.ndarray:
        a = np.asarray(arr[key])
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.number):
            raise HandModelFileError(f"{path}: key {key!r}: expected a {ndim}-D numeric array; found shape {a.shape}")
        return a.astype(dtype)

    v = get("v_template", 2)
    nv = v.shape[0]
    kin = get("kintree_table", 2, np.int64)
    if kin.shape[0] != 2:
        raise HandModelFileError(f"{path}: key 'kintree_table': expected shape (2, J); found {kin.shape}")
    nj = kin.shape[1]
    parents = kin[0].copy()
    parents[0] = -1  # stored as uint32 -1
    expect = {
        "v_template": (nv, 3), "f": None, "weights": (nv, nj), "J_regressor": (nj, nv),
        "hands_components": (45, 45), "hands_mean": (45,),
    }  # fmt: skip
    data = {}
    for key, shape in expect.items():
        a = get(key, 1 if key == "hands_mean" else 2, np.int64 if key == "f" else np.float64)
        if shape is not None and a.shape != shape:
            raise HandModelFileError(f"{path}: key {key!r}: expected shape {shape}; found {a.shape}")
        data[key] = a
    faces = data["f"]
    if faces.shape[1:] != (3,) or faces.min() < 0 or faces.max() >= nv:
        raise HandModelFileError(f"{path}: key 'f': expected (F, 3) vertex indices below {nv}; found {faces.shape}")
    shapedirs = get("shapedirs", 3)
    if shapedirs.shape[:2] != (nv, 3):
        raise HandModelFileError(f"{path}: key 'shapedirs': expected shape ({nv}, 3, S); found {shapedirs.shape}")
    posedirs = get("posedirs", 3)
    if posedirs.shape != (nv, 3, 9 * (nj - 1)):
        raise HandModelFileError(f"{path}: key 'posedirs': expected shape ({nv}, 3, {9 * (nj - 1)}); found {posedirs.shape}")
    if nj != 16 or np.any(parents[1:] >= np.arange(1, nj)) or np.any(parents[1:] < 0):
        raise HandModelFileError(f"{path}: key 'kintree_table': expected MANO's 16-joint tree; found parents {parents.tolist()}")
    coeffs = get("hands_coeffs", 2) if "hands_coeffs" in arr else None
    tips = get("tip_ids", 1, np.int64) if "tip_ids" in arr else None
    extras = {k[len("prior_"):]: np.asarray(a) for k, a in arr.items() if k.startswith("prior_")}
    for key, a in (("v_template", v), ("shapedirs", shapedirs), ("weights", data["weights"])):
        if not np.all(np.isfinite(a)):
            raise HandModelFileError(f"{path}: key {key!r}: contains NaN or inf")
    return HandModelData(
        v_template=v, faces=faces, shapedirs=shapedirs, posedirs=posedirs, J_regressor=data["J_regressor"],
        weights=data["weights"], parents=parents, hands_components=data["hands_components"],
        hands_mean=data["hands_mean"], hands_coeffs=coeffs, tip_ids=tips, extras=extras,
        name=name or path.name,
    )  # fmt: skip
