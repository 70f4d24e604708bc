import numpy as np
import pytest
import torch

from handssca.data.base import DatasetLayoutError
from handssca.data.dexycb import DexYCB, s0_sequences
from handssca.data.freihand import FreiHAND
from handssca.data.ho3d import HO3D
from handssca.data.transforms import project
from handssca.hand import HandModel

from .layouts import write_dexycb, write_freihand, write_ho3d


def check_projection(sample, size):
    """3D joints through the crop's K land on the 2D joints (within 0.5 px)."""
    px = project(sample["joints_cam"].astype(np.float64), sample["K"].astype(np.float64))
    assert np.abs(px - (sample["joints_img"] * size - 0.5)).max() < 0.5


def check_mano(sample, hand, atol=2e-4):
    """The MANO labels reproduce the 3D joints up to a translation (FreiHAND order)."""
    pose = torch.tensor(sample["pose"], dtype=torch.float64)[None]
    out = hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=torch.tensor(sample["betas"], dtype=torch.float64)[None])
    j = out["joints"][0].numpy()
    gt = sample["joints_cam"].astype(np.float64)
    np.testing.assert_allclose(j - j[0], gt - gt[0], atol=atol)


@pytest.fixture(scope="module")
def hand():
    return HandModel.default(dtype=torch.float64)


def test_freihand_reader(tmp_path, hand):
    truth = write_freihand(tmp_path)
    for split, aug in (("train", True), ("test", False)):
        ds = FreiHAND(tmp_path, split, 128, augment=aug, version="all" if split == "train" else "auto", val_count=1)
        assert len(ds) == (8 if split == "train" else 2)
        for i in range(len(ds)):
            s = ds[i]
            check_projection(s, 128)
            check_mano(s, hand)
        if split == "test":
            np.testing.assert_allclose(ds[1]["joints_cam"], truth["test"][1]["joints_cam"], atol=1e-6)
    val = FreiHAND(tmp_path, "val", 128, val_count=1)
    assert len(val) == 1 and val.records[0].image.name == "00000002.jpg"


def test_freihand_errors_name_the_file(tmp_path):
    write_freihand(tmp_path)
    (tmp_path / "training_xyz.json").write_text("[[1, 2")
    with pytest.raises(DatasetLayoutError, match="training_xyz.json: malformed JSON"):
        FreiHAND(tmp_path, "train", 128)
    (tmp_path / "training_xyz.json").unlink()
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(DatasetLayoutError, match="training_K.json: missing"):
        FreiHAND(tmp_path, "train", 128)
    with pytest.raises(DatasetLayoutError, match="nowhere: missing"):
        FreiHAND(tmp_path / "nowhere", "train", 128)


def test_freihand_truncated_image_is_named(tmp_path):
    write_freihand(tmp_path)
    img = tmp_path / "evaluation" / "rgb" / "00000001.jpg"
    img.write_bytes(img.read_bytes()[:100])
    ds = FreiHAND(tmp_path, "test", 128)
    with pytest.raises(DatasetLayoutError, match="00000001.jpg"):
        ds[1]


def test_ho3d_reader(tmp_path, hand):
    truth = write_ho3d(tmp_path, hand.full_hands_mean.numpy())
    train = HO3D(tmp_path, "train", 128, augment=True, val_fraction=0.0, hands_mean=hand.full_hands_mean.numpy())
    assert len(train) == 3
    for i in range(3):
        s = train[i]
        check_projection(s, 128)
        check_mano(s, hand)
    # conversions OpenGL -> OpenCV and HO3D order -> FreiHAND order undo the writer's
    np.testing.assert_allclose(train.records[1].joints_cam, truth["train"][1]["joints_cam"], atol=1e-9)
    test = HO3D(tmp_path, "test", 128, hands_mean=hand.full_hands_mean.numpy())
    s = test[0]
    np.testing.assert_allclose(s["root_cam"], truth["test"][0]["joints_cam"][0], atol=1e-6)
    assert s["valid_joints_cam"] == 0 and s["valid_joints_img"] == 0
    (tmp_path / "train" / "SEQ0" / "meta" / "0000.pkl").write_bytes(b"\x80\x02}q\x00(")
    with pytest.raises(DatasetLayoutError, match="0000.pkl: not a valid"):
        HO3D(tmp_path, "train", 128, hands_mean=hand.full_hands_mean.numpy())


def test_dexycb_reader_s0_and_left_hands(tmp_path, hand):
    used = write_dexycb(tmp_path, hand.hands_components.numpy())
    assert len(s0_sequences(tmp_path, "train")) == 8
    assert [q for _, q in s0_sequences(tmp_path, "val")] == ["2020-seq-4"] and len(s0_sequences(tmp_path, "test")) == 1
    train = DexYCB(tmp_path, "train", 128, augment=True, hand_model=hand)
    assert len(train) == 8  # the frame without a hand is skipped
    for i in range(len(train)):
        check_projection(train[i], 128)
        check_mano(train[i], hand)
    test = DexYCB(tmp_path, "test", 128, hand_model=hand)
    assert len(test) == 1 and test.records[0].hand_side == "left"
    s = test[0]
    scene, left = used[(test.records[0].key.split("/")[0], test.records[0].key.split("/")[1])]
    assert left and s["hand_side"] == "left"
    # mirrored back to a right hand: the same labels as the scene it was made from
    np.testing.assert_allclose(s["joints_cam"], scene["joints_cam"], atol=1e-5)
    np.testing.assert_allclose(s["pose"], scene["pose"], atol=1e-5)
    check_projection(s, 128)
    check_mano(s, hand)
