"""The hand model's identity: a content hash independent of file format and place, and loading the model
an identity names (the checks that keep a MANO-trained network from driving another hand)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from handssca.hand import HandModel
from handssca.hand.identity import check_identity, load_identified

from .mano_files import random_model_arrays, write_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same random MANO model as an official pickle, a plain pickle and an npz, in two folders, and
    another model."""
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    arrays = random_model_arrays(seed=3)
    official, _ = write_model(a, "official", arrays=arrays)
    plain, _ = write_model(b, "plain", arrays=arrays)
    npz, _ = write_model(b, "npz", arrays=arrays)
    moved = b / "renamed_copy.pkl"
    shutil.copy(official, moved)
    other, _ = write_model(tmp_path_factory.mktemp("c"), "npz", seed=4)
    return dict(official=official, plain=plain, npz=npz, moved=moved, other=other, arrays=arrays)


def test_the_hash_depends_on_the_arrays_only(files, tmp_path):
    hashes = {k: HandModel.from_file(files[k]).content_hash for k in ("official", "plain", "npz", "moved")}
    assert len(set(hashes.values())) == 1, hashes  # format, folder and file name do not enter it
    assert HandModel.from_file(files["other"]).content_hash != hashes["official"]
    # one template coordinate changed by 1e-12 m: another model
    arrays = {k: v.copy() for k, v in files["arrays"].items()}
    arrays["v_template"][100, 1] += 1e-12
    nudged, _ = write_model(tmp_path, "npz", arrays=arrays)
    assert HandModel.from_file(nudged).content_hash != hashes["official"]
    # what does not change a mesh does not change the hash: the pose samples
    arrays = {k: v.copy() for k, v in files["arrays"].items()}
    arrays["hands_coeffs"] = arrays["hands_coeffs"][:5] * 2
    (tmp_path / "r").mkdir()
    resampled, _ = write_model(tmp_path / "r", "npz", arrays=arrays)
    assert HandModel.from_file(resampled).content_hash == hashes["official"]


def test_identity_names_the_model(files):
    mano = HandModel.from_file(files["official"]).identity()
    assert mano["name"] == "MANO_RIGHT.pkl" and mano["side"] == "right" and mano["default"] is False
    assert mano["flat_hand_mean"] is False and len(mano["sha256"]) == 64
    default = HandModel.default().identity()
    assert default["default"] is True and default["sha256"] != mano["sha256"]
    assert HandModel.default(side="left").identity()["side"] == "left"
    assert check_identity(mano, "x") == mano


def test_load_identified_uses_only_the_same_model(files, caplog):
    identity = HandModel.from_file(files["official"]).identity()
    # the same arrays under another name and format are accepted, with the recorded side and mean
    hand, used = load_identified(identity, files["npz"], None, "ck.pt")
    assert used == str(files["npz"]) and hand.content_hash == identity["sha256"]
    reference = HandModel.from_file(files["official"])
    np.testing.assert_array_equal(hand.v_template.numpy(), reference.v_template.numpy())
    # without a file: the one at the recorded path when it is there
    hand, used = load_identified(identity, None, files["moved"], "ck.pt")
    assert used == str(files["moved"])
    # another model: an error naming both
    with pytest.raises(ValueError) as e:
        load_identified(identity, files["other"], None, "ck.pt")
    msg = str(e.value)
    assert "ck.pt" in msg and "MANO_RIGHT.pkl" in msg and str(files["other"]) in msg and "\n" not in msg
    assert identity["sha256"][:12] in msg
    # no file at all, or the recorded one gone: an error naming --hand-model, never the default hand
    for recorded in (None, files["official"].parent / "gone.pkl"):
        with pytest.raises(ValueError, match="--hand-model") as e:
            load_identified(identity, None, recorded, "ck.pt")
        assert "MANO_RIGHT.pkl" in str(e.value)
    # a recorded path holding another model: not used
    with pytest.raises(ValueError, match=f"{files['other']}.*--hand-model"):
        load_identified(identity, None, files["other"], "ck.pt")
    # a recorded side wins over the file name's
    left = dict(identity, side="left")
    assert load_identified(left, files["official"], None, "ck.pt")[0].side == "left"
    # an identity without a hash (an old checkpoint): the file given is used, with a warning
    with caplog.at_level(logging.WARNING, logger="handssca.hand"):
        hand, _ = load_identified(dict(identity, sha256=None), files["other"], None, "old.pt")
    assert "old.pt" in caplog.text and "unverified" in caplog.text


def test_load_identified_default_hand(files):
    identity = HandModel.default().identity()
    hand, used = load_identified(identity, None, None, "ck.pt")
    assert used is None and hand.is_default and hand.content_hash == identity["sha256"]
    with pytest.raises(ValueError, match="default hand.*MANO_RIGHT.npz"):
        load_identified(identity, files["npz"], None, "ck.pt")
    # a default hand that is not this package's (another version of the asset): not silently replaced
    with pytest.raises(ValueError, match="not this handssca's"):
        load_identified(dict(identity, sha256="0" * 64), None, None, "ck.pt")


@pytest.mark.parametrize(
    "bad, key",
    [
        ([], "expected a dict"),
        ({"name": "x"}, "missing keys"),
        ({"name": "x", "sha256": "abc", "side": "right", "flat_hand_mean": False, "default": False}, "'sha256'"),
        ({"name": "x", "sha256": None, "side": "up", "flat_hand_mean": False, "default": False}, "'side'"),
        ({"name": "x", "sha256": None, "side": "right", "flat_hand_mean": 0, "default": False}, "'flat_hand_mean'"),
    ],
)
def test_check_identity_names_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        check_identity(bad, "ck.pt: key 'hand_model'")
