"""Unpickling untrusted files with an allow-list: numpy arrays (pickle protocols 0-5), and the chumpy
and scipy objects of the official MANO files as inert holders (evaluated by hand/loader.py).

Pickles can run code: only the handful of callables below can be named by a file; anything else is
refused before it is constructed, allowed callables check the sizes they are given, and a pickle
cannot modify them. Every failure is one error naming the file. This module imports nothing from
the package: the hand loader and the dataset readers (HO3D's meta pickles) both use it.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

import numpy as np


class PickleFileError(ValueError):
    """A pickle file is unreadable, truncated or names something the allow-list refuses."""


class _BadValue(ValueError):
    """Raised while unpickling by an allowed callable; the caller adds the file name."""


class _Sealed(type):
    """Metaclass of the classes a pickle can name: BUILD cannot set attributes on them (which would
    change how the next file loads)."""

    def __setattr__(cls, name, value):
        raise _BadValue(f"refusing to set {name!r} on {cls.__name__}: a pickle may not modify the loader's classes")


class _SealedCall:
    """An allowed function as a pickle sees it: callable, with no attributes a BUILD could change."""

    __slots__ = ("_func",)

    def __init__(self, func):
        object.__setattr__(self, "_func", func)

    def __setattr__(self, name, value):
        raise _BadValue(f"refusing to set {name!r} on an allowed function: a pickle may not modify the loader")

    def __call__(self, *args, **kwargs):
        return self._func(*args, **kwargs)


class _Inert(metaclass=_Sealed):
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


class _NdarrayClass(metaclass=_Sealed):
    """What a pickle's ``numpy.ndarray`` resolves to: a token for ``_reconstruct``, not a constructor
    (calling ``numpy.ndarray(shape)`` would allocate whatever size the file declares)."""

    def __new__(cls, *args, **kwargs):
        raise _BadValue("numpy.ndarray may only appear as the class given to numpy's _reconstruct")


def _int_shape(shape: object, what: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) > 32:
        raise _BadValue(f"{what}: expected a shape (a tuple of integers); found {type(shape).__name__}")
    out = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise _BadValue(f"{what}: expected a shape of non-negative integers; found {shape!r}")
        out.append(int(n))
    return tuple(out)


def _as_dtype(dtype: object, what: str) -> np.dtype:
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, (str, bytes)) and len(dtype) <= 16:
        try:
            return np.dtype(dtype.decode("latin1") if isinstance(dtype, bytes) else dtype)
        except TypeError:
            pass
    raise _BadValue(f"{what}: expected a numpy dtype; found {dtype!r:.60}")


def _safe_reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct`` (pickles at protocols 0-4): an empty array that BUILD then fills."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct

    if subtype is not _NdarrayClass:
        raise _BadValue("numpy _reconstruct: expected the class numpy.ndarray")
    shape = _int_shape(shape, "numpy _reconstruct")
    dtype = _as_dtype(dtype, "numpy _reconstruct")
    if math.prod(shape) * dtype.itemsize > 1024:  # numpy writes shape (0,); the data comes with BUILD
        raise _BadValue(f"numpy _reconstruct: expected an empty placeholder array; found shape {shape} of {dtype}")
    return _reconstruct(np.ndarray, shape, dtype)


def _safe_frombuffer(buf, dtype, shape, order):
    """numpy's ``_frombuffer`` (pickles at protocol 5): an array viewing the in-band buffer."""
    what = "numpy _frombuffer"
    if not isinstance(buf, (bytes, bytearray)):
        raise _BadValue(f"{what}: expected the array's bytes in the pickle; found {type(buf).__name__}")
    dtype = _as_dtype(dtype, what)
    if dtype.hasobject or dtype.itemsize == 0:
        raise _BadValue(f"{what}: expected a numeric dtype (no Python objects); found {dtype}")
    shape = _int_shape(shape, what)
    if order not in ("C", "F"):
        raise _BadValue(f"{what}: expected order 'C' or 'F'; found {order!r:.20}")
    if len(buf) % dtype.itemsize or math.prod(shape) != len(buf) // dtype.itemsize:
        raise _BadValue(f"{what}: a buffer of {len(buf) // dtype.itemsize} values of {dtype} cannot have shape {shape}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _numpy_scalar(dtype, data=None):
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar

    dtype = _as_dtype(dtype, "numpy scalar")
    return scalar(dtype) if data is None else scalar(dtype, data)


#: ``_codecs.encode(text, 'latin1')`` is how pickles at protocols 0-2 store bytes; nothing else is needed.
_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"}


def _codecs_encode(obj, encoding="latin1"):
    if not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise _BadValue(f"_codecs.encode with encoding {encoding!r:.40}: expected 'latin1' (how a pickle stores bytes)")
    if not isinstance(obj, str):
        raise _BadValue(f"_codecs.encode: expected a str; found {type(obj).__name__}")
    return obj.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _SealedCall(_safe_reconstruct),
    ("numpy._core.multiarray", "_reconstruct"): _SealedCall(_safe_reconstruct),
    ("numpy.core.numeric", "_frombuffer"): _SealedCall(_safe_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _SealedCall(_safe_frombuffer),
    ("numpy", "ndarray"): _NdarrayClass,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _SealedCall(_numpy_scalar),
    ("numpy._core.multiarray", "scalar"): _SealedCall(_numpy_scalar),
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _SealedCall(_codecs_encode),
    ("chumpy.ch", "Ch"): _ChumpyCh,
    ("chumpy.reordering", "Select"): _ChumpySelect,
    ("scipy.sparse.csc", "csc_matrix"): _CscMatrix,
    ("scipy.sparse._csc", "csc_matrix"): _CscMatrix,
    ("scipy.sparse", "csc_matrix"): _CscMatrix,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str, error: type[ValueError]):
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._path, self._error = path, error

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise self._error(
                f"{self._path}: refusing to load {module}.{name}: not one of the classes the allow-list accepts "
                "(a pickle can run code; only numpy arrays, chumpy Ch/Select and scipy csc_matrix are allowed)"
            )
        return allowed

    def persistent_load(self, pid):
        raise self._error(f"{self._path}: persistent ids are not allowed in a pickle read with the allow-list")


def unpickle_bytes(
    raw: bytes, path: str | os.PathLike, what: str = "pickle", error: type[ValueError] = PickleFileError
) -> object:
    """Run the allow-list unpickler on a file's bytes; whatever goes wrong becomes one ``error``
    naming the file."""
    try:
        return _SafeUnpickler(io.BytesIO(raw), str(path), error).load()
    except error:
        raise
    except _BadValue as e:
        raise error(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - anything the allowed callables or the pickle machine raise
        raise error(f"{path}: not a valid (or a truncated) {what} ({type(e).__name__}: {e})") from None


def safe_pickle_load(path: str | os.PathLike, error: type[ValueError] = PickleFileError) -> object:
    """Unpickle a data file (e.g. HO3D's meta/*.pkl, Python 2 pickles of numpy arrays) with the allow-list."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    return unpickle_bytes(raw, path, "pickle", error)
