"""Random MANO-format models written by the tests themselves, in the official byte layout.

The official files are Python 2 protocol-2 pickles whose shapedirs is a chumpy ``Select`` over a
``Ch`` holding a 20-component base, whose J_regressor is a ``scipy.sparse.csc.csc_matrix``, and
whose arrays are pickled under ``numpy.core.multiarray``. We write the same opcodes with stand-in
classes registered under those module names, so no chumpy is needed.
"""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np

PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])


def random_model_arrays(seed: int = 0, nv: int = 778, side: str = "right") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(nv, 3)) * np.array([0.05, 0.012, 0.03])
    v[:, 0] += 0.03 if side == "right" else -0.03
    faces = np.array([rng.choice(nv, 3, replace=False) for _ in range(2 * nv)], dtype=np.uint32)
    J = np.zeros((16, nv))
    for j in range(16):
        ids = rng.choice(nv, 8, replace=False)
        J[j, ids] = rng.uniform(0.5, 1.5, 8)
    J /= J.sum(1, keepdims=True)
    w = rng.uniform(0, 1, (nv, 16)) ** 4
    w /= w.sum(1, keepdims=True)
    kintree = np.stack([PARENTS.astype(np.int64), np.arange(16)])
    kintree[0, 0] = 4294967295
    return dict(
        v_template=v,
        f=faces,
        shapedirs_full=rng.normal(size=(nv, 3, 20)) * 0.004,
        posedirs=rng.normal(size=(nv, 3, 135)) * 0.003,
        J_regressor=J,
        J=J @ v,
        weights=w,
        kintree_table=kintree,
        hands_components=rng.normal(size=(45, 45)) * 0.3,
        hands_mean=rng.normal(size=45) * 0.2,
        hands_coeffs=rng.normal(size=(30, 45)),
    )


def _fake_module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        v.__module__ = name
        v.__qualname__ = k
        setattr(mod, k, v)
    return mod


class Ch:
    def __init__(self, x):
        self.__dict__.update(
            x=x, _dirty_vars=set(), _depends_on_deps={}, _itr=None, _make_dense=False, _make_sparse=False
        )


class Select:
    def __init__(self, a, idxs, shape):
        self.__dict__.update(a=a, idxs=idxs, preferred_shape=shape, _dirty_vars=set(), _depends_on_deps={})


class csc_matrix:
    def __init__(self, dense):
        idx_data, indices, indptr = [], [], [0]
        for col in range(dense.shape[1]):
            rows = np.nonzero(dense[:, col])[0]
            indices.extend(rows)
            idx_data.extend(dense[rows, col])
            indptr.append(len(indices))
        self.__dict__.update(
            _shape=dense.shape,
            data=np.array(idx_data),
            indices=np.array(indices, dtype=np.int32),
            indptr=np.array(indptr, dtype=np.int32),
            maxprint=50,
            format="csc",
        )


def official_pickle_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Protocol-2 pickle with chumpy Select/Ch shapedirs and a csc J_regressor, numpy.core names."""
    mods = {
        "chumpy": types.ModuleType("chumpy"),
        "chumpy.ch": _fake_module("chumpy.ch", Ch=Ch),
        "chumpy.reordering": _fake_module("chumpy.reordering", Select=Select),
        "scipy.sparse.csc": _fake_module("scipy.sparse.csc", csc_matrix=csc_matrix),
    }
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        full = arrays["shapedirs_full"]
        nv = full.shape[0]
        idxs = np.arange(nv * 3 * 20).reshape(nv, 3, 20)[:, :, :10].ravel().astype(np.int64)
        obj = {k: v for k, v in arrays.items() if k != "shapedirs_full"}
        obj["shapedirs"] = Select(Ch(full), idxs, (nv, 3, 10))
        obj["J_regressor"] = csc_matrix(arrays["J_regressor"])
        obj["bs_style"], obj["bs_type"] = "lbs", "lrotmin"
        data = pickle.dumps(obj, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def plain_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {k: v for k, v in arrays.items() if k != "shapedirs_full"}
    out["shapedirs"] = arrays["shapedirs_full"][:, :, :10].copy()
    return out


def write_model(tmp_path, kind: str, seed: int = 0, side: str = "right", arrays=None):
    """Write a random model as 'official' pkl, 'plain' pkl or 'npz'; returns (path, arrays)."""
    arrays = arrays if arrays is not None else random_model_arrays(seed, side=side)
    name = f"MANO_{side.upper()}"
    if kind == "official":
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(official_pickle_bytes(arrays))
    elif kind == "plain":
        path = tmp_path / f"{name}_plain.pkl"
        path.write_bytes(pickle.dumps(plain_arrays(arrays), protocol=2))
    else:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **plain_arrays(arrays))
    return path, arrays
