import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from handssca.hand.loader import HandModelFileError, load_hand_model_data

from .mano_files import official_pickle_bytes, plain_arrays, random_model_arrays, write_model

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "mano"


@pytest.mark.parametrize("kind", ["official", "plain", "npz"])
def test_formats_load_the_same_arrays(tmp_path, kind):
    path, arrays = write_model(tmp_path, kind)
    d = load_hand_model_data(path)
    ref = plain_arrays(arrays)
    for key, got in (
        ("v_template", d.v_template),
        ("shapedirs", d.shapedirs),
        ("posedirs", d.posedirs),
        ("J_regressor", d.J_regressor),
        ("weights", d.weights),
        ("hands_components", d.hands_components),
        ("hands_mean", d.hands_mean),
    ):
        np.testing.assert_array_equal(got, ref[key], err_msg=key)
    np.testing.assert_array_equal(d.faces, ref["f"].astype(np.int64))
    assert d.parents.tolist() == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared fixtures not present (not part of a user's clone)")
@pytest.mark.parametrize("side", ["RIGHT", "LEFT"])
def test_shared_fixture_loads_bit_exactly(side):
    ref = np.load(SHARED / f"model_arrays_{side.lower()}.npz")
    for folder in ("models", "models_plain"):
        d = load_hand_model_data(SHARED / folder / f"MANO_{side}.pkl")
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "hands_components", "hands_mean"):
            np.testing.assert_array_equal(getattr(d, key), ref[key], err_msg=f"{folder}/{key}")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/handssca_pwned",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = Path("/tmp/handssca_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    with pytest.raises(HandModelFileError, match=r"refusing to load (posix|os)\.system"):
        load_hand_model_data(path)
    assert not marker.exists()


def test_truncated_pickle(tmp_path):
    data = official_pickle_bytes(random_model_arrays())
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HandModelFileError, match="MANO_RIGHT.pkl: not a valid \\(or a truncated\\)"):
        load_hand_model_data(path)


def test_missing_keys(tmp_path):
    arrays = plain_arrays(random_model_arrays())
    del arrays["weights"]
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(HandModelFileError, match=r"m.pkl: missing keys \['weights'\]"):
        load_hand_model_data(path)


def test_wrong_shape(tmp_path):
    arrays = plain_arrays(random_model_arrays())
    arrays["posedirs"] = arrays["posedirs"][:, :, :100]
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    with pytest.raises(HandModelFileError, match=r"m.npz: key 'posedirs': expected shape \(778, 3, 135\)"):
        load_hand_model_data(path)


def test_not_a_pickle_and_missing_file(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(b"hello world")
    with pytest.raises(HandModelFileError, match="m.pkl"):
        load_hand_model_data(path)
    with pytest.raises(FileNotFoundError, match="nope.pkl"):
        load_hand_model_data(tmp_path / "nope.pkl")


def _textured_arrays() -> dict:
    """A random MANO-format model with a small texture mapping (one uv per face corner)."""
    arrays = plain_arrays(random_model_arrays())
    nf = len(arrays["f"])
    rng = np.random.default_rng(0)
    arrays["uv"] = rng.uniform(0, 1, (3 * nf, 2))
    arrays["faces_uv"] = np.arange(3 * nf).reshape(nf, 3)
    arrays["texture"] = rng.integers(0, 256, (8, 8, 4)).astype(np.uint8)
    return arrays


def test_texture_mapping_loads_and_bad_ones_name_the_key(tmp_path):
    arrays = _textured_arrays()
    np.savez(tmp_path / "ok.npz", **arrays)
    d = load_hand_model_data(tmp_path / "ok.npz")
    assert d.texture.dtype == np.uint8
    np.testing.assert_array_equal(d.texture, arrays["texture"])
    np.testing.assert_array_equal(d.faces_uv, arrays["faces_uv"])
    np.testing.assert_allclose(d.uv, arrays["uv"])
    cases = {
        "partial": (
            {k: v for k, v in arrays.items() if k != "texture"},
            r"has \['uv', 'faces_uv'\] but not \['texture'\]",
        ),
        "float": ({**arrays, "texture": arrays["texture"] / 255.0}, r"key 'texture': expected 8-bit texels"),
        "ids": ({**arrays, "faces_uv": arrays["faces_uv"] + 1}, r"key 'faces_uv': expected ids into 'uv'"),
        "corners": (
            {**arrays, "faces_uv": arrays["faces_uv"][:-1]},
            r"key 'faces_uv': expected one id per face corner",
        ),
        "big": ({**arrays, "texture": np.zeros((5000, 2, 4), np.uint8)}, r"key 'texture': expected shape"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **bad)
        with pytest.raises(HandModelFileError, match=f"{name}.npz: .*{message}"):
            load_hand_model_data(path)


def test_left_default_hand_keeps_each_corners_texture_coordinate():
    """Mirroring re-winds faces; each (face, vertex) corner must keep its own uv."""
    from handssca.hand import HandModel

    right, left = HandModel.default(), HandModel.default(side="left")
    for k in range(0, len(right.faces), 97):
        r = dict(zip(right.faces[k].tolist(), right.faces_uv[k].tolist()))
        lft = dict(zip(left.faces[k].tolist(), left.faces_uv[k].tolist()))
        assert r == lft and list(right.faces[k]) != list(left.faces[k])
