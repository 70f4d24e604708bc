"""Reader layouts, splits and errors (labels and conventions: test_real_formats.py)."""

import numpy as np
import pytest
import torch

from handssca.data.base import DatasetLayoutError
from handssca.data.dexycb import DexYCB, s0_sequences
from handssca.data.freihand import FreiHAND
from handssca.data.ho3d import HO3D
from handssca.hand import HandModel

pytest.importorskip("smplx")

from .real_formats import DEX_SUBJECTS, ManoFiles, write_dexycb, write_freihand, write_ho3d  # noqa: E402


@pytest.fixture(scope="module")
def mano(tmp_path_factory):
    return ManoFiles(tmp_path_factory.mktemp("mano"), left_official_bug=False)


@pytest.fixture(scope="module")
def right(mano):
    return HandModel.from_file(mano.right_path, dtype=torch.float64)


def test_freihand_versions_and_splits(tmp_path, mano, right):
    write_freihand(tmp_path, mano, n_train=10, n_eval=2)
    ds = FreiHAND(tmp_path, "train", right, 128, version="all")
    assert len(ds) == 4 * 9 and ds.records[9].image.name == "00000010.jpg"  # version 2 of id 0
    val = FreiHAND(tmp_path, "val", right, 128)
    assert len(val) == 1 and val.records[0].image.name == "00000009.jpg"  # green screen images
    assert len(FreiHAND(tmp_path, "test", right, 128)) == 2


def test_freihand_errors_name_the_file(tmp_path, mano, right):
    write_freihand(tmp_path, mano, n_train=2, n_eval=1)
    (tmp_path / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(DatasetLayoutError, match="training_xyz.json: malformed JSON"):
        FreiHAND(tmp_path, "train", right, 128)
    (tmp_path / "training_xyz.json").unlink()
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(DatasetLayoutError, match="training_K.json: missing"):
        FreiHAND(tmp_path, "train", right, 128)
    with pytest.raises(DatasetLayoutError, match="nowhere: missing"):
        FreiHAND(tmp_path / "nowhere", "train", right, 128)
    with pytest.raises(ValueError, match="MANO hand model is needed"):
        FreiHAND(tmp_path, "test", None, 128)


def test_freihand_truncated_image_is_named(tmp_path, mano, right):
    write_freihand(tmp_path, mano, n_train=2, n_eval=2)
    img = tmp_path / "evaluation" / "rgb" / "00000001.jpg"
    img.write_bytes(img.read_bytes()[:100])
    ds = FreiHAND(tmp_path, "test", right, 128)
    with pytest.raises(DatasetLayoutError, match="00000001.jpg"):
        ds[1]


def test_ho3d_splits_and_malformed_meta(tmp_path, mano, right):
    write_ho3d(tmp_path, mano, n_train=4)
    assert len(HO3D(tmp_path, "train", right, 128, val_fraction=0.25)) == 3
    assert [r.key for r in HO3D(tmp_path, "val", right, 128, val_fraction=0.25).records] == ["SEQ1/0003"]
    (tmp_path / "train" / "SEQ0" / "meta" / "0000.pkl").write_bytes(b"\x80\x02}q\x00(")
    with pytest.raises(DatasetLayoutError, match="0000.pkl: not a valid"):
        HO3D(tmp_path, "train", right, 128)
    with pytest.raises(ValueError, match="MANO hand model is needed"):
        HO3D(tmp_path, "train", None, 128)


def test_dexycb_s0_split_rules(tmp_path, mano, right):
    write_dexycb(tmp_path, mano)
    assert len(s0_sequences(tmp_path, "train")) == 8
    assert [s for s, _ in s0_sequences(tmp_path, "val")] == [DEX_SUBJECTS[0]]
    assert [s for s, _ in s0_sequences(tmp_path, "test")] == [DEX_SUBJECTS[1]]
    left = HandModel.from_file(mano.left_path, dtype=torch.float64)
    train = DexYCB(tmp_path, "train", right, 128, left_hand_model=left)
    assert len(train) == 8 and sum(r.hand_side == "left" for r in train.records) == 1  # frames without a hand skipped
    assert np.all([r.key.endswith("labels_000000") for r in train.records])
