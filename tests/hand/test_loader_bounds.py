"""Hostile hand-model files: sizes declared in a file are checked before anything is allocated, every
failure is one typed error naming the file, and plain numpy pickles at protocol 5 load."""

import io
import pickle
import struct
import sys
import zipfile

import numpy as np
import pytest
import torch

from handssca.hand import HandModel
from handssca.hand.loader import HandModelFileError, load_hand_model_data
from handssca.io.safe_pickle import PickleFileError, safe_pickle_load

from . import mano_files
from .mano_files import plain_arrays, random_model_arrays

TB = 10**6  # (TB, TB) float64 = 8 TB: any attempt to allocate it fails


@pytest.fixture
def official_bytes(monkeypatch):
    """Pickle an object graph with the chumpy/scipy stand-ins registered under the official module names."""
    for name, attrs in (
        ("chumpy.ch", {"Ch": mano_files.Ch}),
        ("chumpy.reordering", {"Select": mano_files.Select}),
        ("scipy.sparse.csc", {"csc_matrix": mano_files.csc_matrix}),
    ):
        monkeypatch.setitem(sys.modules, name, mano_files._fake_module(name, **attrs))
    monkeypatch.setitem(sys.modules, "chumpy", type(sys)("chumpy"))
    return lambda obj: pickle.dumps(obj, protocol=2)


def _model(**overrides):
    arrays = plain_arrays(random_model_arrays())
    arrays.update(overrides)
    return arrays


# ---------------------------------------------------------------- sizes declared inside pickles


def _csc(**state):
    m = mano_files.csc_matrix(random_model_arrays()["J_regressor"])
    m.__dict__.update(state)
    return m


@pytest.mark.parametrize(
    "state, message",
    [
        ({"_shape": (10**8, 10**8)}, r"expected shape \(16, 778\); found \(100000000, 100000000\)"),
        ({"_shape": (16, TB)}, r"expected shape \(16, 778\)"),
        ({"indptr": np.zeros(5, dtype=np.int32)}, r"indptr.*779"),
        ({"indices": np.full(128, 10**6, dtype=np.int32)}, r"row indices"),
        ({"data": np.zeros(3)}, r"data"),
    ],
)
def test_sparse_j_regressor_is_checked_before_densifying(tmp_path, official_bytes, state, message):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(official_bytes(_model(J_regressor=_csc(**state))))
    with pytest.raises(HandModelFileError, match=r"MANO_RIGHT.pkl: key 'J_regressor'.*" + message):
        load_hand_model_data(path)


def test_sparse_j_regressor_valid_still_loads(tmp_path, official_bytes):
    arrays = random_model_arrays()
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(official_bytes(_model(J_regressor=mano_files.csc_matrix(arrays["J_regressor"]))))
    np.testing.assert_array_equal(load_hand_model_data(path).J_regressor, arrays["J_regressor"])


def test_template_vertex_count_is_bounded(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_model(v_template=np.zeros((200_001, 3))), protocol=2))
    with pytest.raises(HandModelFileError, match=r"m.pkl: key 'v_template': expected shape \(V, 3\) with V <= 100000"):
        load_hand_model_data(path)


def _select(idxs, shape):
    full = random_model_arrays()["shapedirs_full"]
    return mano_files.Select(mano_files.Ch(full), np.asarray(idxs), shape)


@pytest.mark.parametrize(
    "idxs, shape, message",
    [
        (np.full(778 * 30, 10**9), (778, 3, 10), r"indices: expected values below 46680"),
        (np.arange(778 * 30), (TB, TB), r"preferred shape \(1000000, 1000000\) does not hold 23340 values"),
        (np.arange(778 * 30), "abc", r"preferred shape"),
    ],
)
def test_chumpy_select_is_checked(tmp_path, official_bytes, idxs, shape, message):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(official_bytes(_model(shapedirs=_select(idxs, shape))))
    with pytest.raises(HandModelFileError, match=r"MANO_RIGHT.pkl: key 'shapedirs'.*" + message):
        load_hand_model_data(path)


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_ndarray_constructor_cannot_allocate_a_declared_size(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_model(hands_coeffs=_Reduce(np.ndarray, ((TB, TB),))), protocol=2))
    with pytest.raises(HandModelFileError, match=r"m.pkl: "):
        load_hand_model_data(path)


# ---------------------------------------------------------------- any unpickling failure is typed


def _encode_pickle(encoding: bytes) -> bytes:
    def unicode(s: bytes) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s

    return b"\x80\x02c_codecs\nencode\n" + unicode(b"abc") + unicode(encoding) + b"\x86R."


def test_unknown_codec_is_a_typed_error(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(_encode_pickle(b"no-such-codec"))
    with pytest.raises(HandModelFileError, match=r"m.pkl: .*no-such-codec"):
        load_hand_model_data(path)
    with pytest.raises(PickleFileError, match=r"m.pkl: "):
        safe_pickle_load(path)


def test_codec_other_than_latin1_is_refused(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(_encode_pickle(b"hex"))  # a str -> bytes codec the official files never use
    with pytest.raises(PickleFileError, match=r"m.pkl: _codecs.encode with encoding 'hex': expected 'latin1'"):
        safe_pickle_load(path)


@pytest.mark.parametrize("func, args", [(eval, ("1+1",)), (getattr, ("x", "upper")), (exec, ("import os",))])
def test_code_running_callables_are_refused(tmp_path, func, args):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_model(f=_Reduce(func, args)), protocol=2))
    with pytest.raises(HandModelFileError, match=r"m.pkl: refusing to load (builtins|__builtin__)\."):
        load_hand_model_data(path)


def test_a_pickle_cannot_modify_the_allowed_functions(tmp_path):
    def unicode(s: bytes) -> bytes:
        return b"X" + struct.pack("<I", len(s)) + s

    # BUILD on the allowed _codecs.encode with slot state {'__defaults__': ('hex',)}
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nN}" + unicode(b"__defaults__") + unicode(b"hex") + b"\x85s\x86b.")
    with pytest.raises(PickleFileError, match=r"m.pkl: refusing to set '__defaults__'"):
        safe_pickle_load(path)
    path.write_bytes(b"\x80\x02c_codecs\nencode\n" + unicode(b"abc") + b"\x85R.")  # encode('abc'): latin1
    assert safe_pickle_load(path) == b"abc"


# ---------------------------------------------------------------- protocol 5


def test_plain_pickle_protocol_5_loads_through_hand_model(tmp_path):
    arrays = plain_arrays(random_model_arrays())
    arrays["hands_components"] = np.asfortranarray(arrays["hands_components"])
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=5))
    assert b"_frombuffer" in path.read_bytes()
    hand = HandModel.from_file(path, dtype=torch.float64)
    for key, buf in (
        ("v_template", "v_template"),
        ("posedirs", "posedirs"),
        ("J_regressor", "J_regressor"),
        ("weights", "lbs_weights"),
        ("hands_components", "hands_components"),
    ):
        np.testing.assert_array_equal(getattr(hand, buf).numpy(), arrays[key], err_msg=key)
    np.testing.assert_array_equal(hand.faces_tensor.numpy(), arrays["f"].astype(np.int64))


def test_protocol_5_out_of_band_buffers_are_a_typed_error(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(plain_arrays(random_model_arrays()), protocol=5, buffer_callback=lambda b: False))
    with pytest.raises(HandModelFileError, match=r"m.pkl: "):
        load_hand_model_data(path)


@pytest.mark.parametrize(
    "args, message",
    [
        ((bytearray(16), np.dtype("f8"), (TB, TB), "C"), r"2 values.*shape \(1000000, 1000000\)"),
        ((bytearray(16), np.dtype("O"), (2,), "C"), r"no Python objects"),
        ((bytearray(16), np.dtype("f8"), (2,), "Z"), r"order"),
    ],
)
def test_frombuffer_arguments_are_checked(tmp_path, args, message):
    from numpy._core.numeric import _frombuffer

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_model(hands_mean=_Reduce(_frombuffer, args)), protocol=5))
    with pytest.raises(HandModelFileError, match=r"m.pkl: .*_frombuffer.*" + message):
        load_hand_model_data(path)


# ---------------------------------------------------------------- .npz members


def _npy_member(shape, dtype="<f8", data=b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def _npz_with(tmp_path, members: dict[str, bytes], base: dict | None = None):
    path = tmp_path / "m.npz"
    np.savez(path, **(base if base is not None else plain_arrays(random_model_arrays())))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_npz_member_with_absurd_declared_shape_is_refused_before_reading(tmp_path):
    base = plain_arrays(random_model_arrays())
    del base["hands_coeffs"]
    path = _npz_with(tmp_path, {"hands_coeffs.npy": _npy_member((TB, TB))}, base)
    with pytest.raises(HandModelFileError, match=r"m.npz: key 'hands_coeffs': .*\(1000000, 1000000\)"):
        load_hand_model_data(path)


def test_npz_known_key_with_wrong_declared_shape_is_refused(tmp_path):
    base = plain_arrays(random_model_arrays())
    del base["posedirs"]
    path = _npz_with(tmp_path, {"posedirs.npy": _npy_member((778, 3, TB))}, base)
    with pytest.raises(HandModelFileError, match=r"m.npz: key 'posedirs': expected shape \(778, 3, 135\)"):
        load_hand_model_data(path)


def test_npz_unknown_members_are_not_read(tmp_path):
    path = _npz_with(tmp_path, {"junk.npy": _npy_member((TB, TB)), "notes.txt": b"x" * 10})
    d = load_hand_model_data(path)
    assert d.v_template.shape == (778, 3)


def test_npz_bomb_is_refused_from_its_header(tmp_path):
    # 1 GB of zeros would deflate to ~1 MB; the header alone says it is far beyond any MANO model
    chunk = np.zeros(2**17)  # only the start is written: the header check must not need the data
    base = plain_arrays(random_model_arrays())
    del base["hands_coeffs"]
    path = _npz_with(tmp_path, {"hands_coeffs.npy": _npy_member((2_000_000, 45), data=chunk.tobytes())}, base)
    with pytest.raises(HandModelFileError, match=r"m.npz: key 'hands_coeffs': .*P <= 100000; found \(2000000, 45\)"):
        load_hand_model_data(path)


def test_npz_object_member_is_refused(tmp_path):
    base = plain_arrays(random_model_arrays())
    del base["hands_mean"]
    path = _npz_with(tmp_path, {"hands_mean.npy": _npy_member((45,), "|O")}, base)
    with pytest.raises(HandModelFileError, match=r"m.npz: key 'hands_mean'"):
        load_hand_model_data(path)


def test_a_list_repeating_one_object_by_reference_is_bounded(tmp_path):
    row = [0.0, 0.0, 0.0]
    block = [row] * 1000
    # a few kB describing 3 million numbers (nesting deeper would describe terabytes)
    assert len(pickle.dumps([block] * 1000, protocol=2)) < 10_000
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(_model(v_template=[block] * 1000), protocol=2))
    with pytest.raises(HandModelFileError, match=r"m.pkl: key 'v_template': holds more than the 300000 values"):
        load_hand_model_data(path)
