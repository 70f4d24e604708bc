"""Real-format datasets through the user's path: ``load_config`` + ``build_dataset``.

The files are written in each dataset's own conventions (``real_formats.py``, posed with smplx), so
these tests check the readers against the datasets, not against the readers' own assumptions. The
sample contract checked everywhere: ``hand(pose, betas) + transl == joints_cam`` (and
``vertices_cam`` where the dataset has them) to 1e-5 m, with the configured MANO file and the
dataset's own fingertip vertices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handssca.config import load_config
from handssca.data.base import DatasetLayoutError
from handssca.data.factory import build_dataset
from handssca.hand import HandModel

pytest.importorskip("smplx")

from .real_formats import (  # noqa: E402
    GL,
    TIPS,
    H,
    ManoFiles,
    W,
    official_get_bbox,
    official_process_bbox,
    pixels,
    write_dexycb,
    write_dexycb_handoccnet,
    write_freihand,
    write_ho3d,
    write_ho3d_handoccnet,
)

TOL = 1e-5


def config(name: str, root, mano: ManoFiles, *extra: str):
    return load_config(
        name, [f"data.root={root}", f"model.hand_model={mano.right_path}", "model.input_size=128", *extra]
    )


def contract_joints(sample: dict, hand: HandModel, tips=None) -> tuple[np.ndarray, np.ndarray]:
    """(joints (21, 3), vertices) of hand(pose, betas) + transl for a sample, metres (float64)."""
    t = lambda k: torch.tensor(np.asarray(sample[k], dtype=np.float64))[None]  # noqa: E731
    out = hand(global_orient=t("pose")[:, :3], hand_pose=t("pose")[:, 3:], betas=t("betas"), transl=t("transl"))
    joints = out["joints"][0].numpy()
    if tips is not None:  # another fingertip convention for this sample (DexYCB left hands: middle tip 445)
        order = [4, 8, 12, 16, 20]
        joints[order] = out["vertices"][0].numpy()[list(tips)]
    return joints, out["vertices"][0].numpy()


def contract_error(sample: dict, hand: HandModel, tips=None) -> tuple[float, float]:
    """max |hand(pose, betas) + transl - joints_cam| and the same for vertices (nan without them), metres."""
    joints, verts = contract_joints(sample, hand, tips)
    assert sample["valid_mano"] == 1 and sample["valid_joints_cam"] == 1
    ej = float(np.abs(joints - sample["joints_cam"]).max())
    ev = float(np.abs(verts - sample["vertices_cam"]).max()) if sample["valid_vertices"] else float("nan")
    return ej, ev


def check_projection(sample, size):
    K = sample["K"].astype(np.float64)
    p = sample["joints_cam"].astype(np.float64) @ K.T
    assert np.abs(p[:, :2] / p[:, 2:] - (sample["joints_img"] * size - 0.5)).max() < 0.05


@pytest.fixture(scope="module")
def mano(tmp_path_factory):
    return ManoFiles(tmp_path_factory.mktemp("mano"), left_official_bug=False)


@pytest.fixture(scope="module")
def mano_official_left(tmp_path_factory):
    return ManoFiles(tmp_path_factory.mktemp("mano_bug"), left_official_bug=True)


def hand(mano: ManoFiles, tips) -> HandModel:
    return HandModel.from_file(mano.right_path, fingertips=tips, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- FreiHAND
def test_freihand_contract_through_the_config(tmp_path, mano):
    truth = write_freihand(tmp_path, mano)
    ref = hand(mano, TIPS["freihand"])
    train = build_dataset(config("freihand", tmp_path, mano), "train", train=True)
    assert len(train) == 9  # 10 ids, the last one held out for val (a tenth of a small set)
    for i in range(len(train)):
        ej, ev = contract_error(train[i], ref)
        assert ej < TOL and ev < TOL, (i, ej, ev)
        check_projection(train[i], 128)
    test = build_dataset(config("freihand", tmp_path, mano), "test")
    for i, t in enumerate(truth["evaluation"]):
        s = test[i]
        assert max(contract_error(s, ref)) < TOL
        np.testing.assert_allclose(s["joints_cam"], t["xyz"], atol=1e-6)
        np.testing.assert_allclose(
            s["pose"], t["pose"], atol=1e-6
        )  # the toolbox's pose is already relative to the mean
        np.testing.assert_allclose(
            s["transl"], t["transl"], atol=1e-6
        )  # recovered although the file has no translation


# ---------------------------------------------------------------------------------------------- HO3D
@pytest.mark.parametrize("annotations", ["official", "handoccnet"])
def test_ho3d_contract_through_the_config(tmp_path, mano, annotations):
    truth = write_ho3d(tmp_path, mano)
    write_ho3d_handoccnet(tmp_path, mano, truth)
    ref = hand(mano, TIPS["ho3d"])
    cfg = config("ho3d", tmp_path, mano, f"data.annotations={annotations}")
    train = build_dataset(cfg, "train", train=True)
    assert len(train) == 4
    for i in range(4):
        s = train[i]
        ej, _ = contract_error(s, ref)
        assert ej < TOL, (i, ej)
        check_projection(s, 128)
    plain = build_dataset(cfg, "train", train=False)
    for i, t in enumerate(truth["train"]):
        s = plain[i]
        np.testing.assert_allclose(
            s["joints_cam"], t["joints_cv"], atol=1e-6
        )  # OpenGL -> OpenCV, HO3D -> FreiHAND order
        np.testing.assert_allclose(s["betas"], t["handBeta"], atol=1e-6)
        np.testing.assert_allclose(s["pose"][3:], t["handPose"][3:] - mano.right["hands_mean"], atol=1e-6)
        R = Rotation.from_rotvec(s["pose"][:3].astype(np.float64)).as_matrix()
        np.testing.assert_allclose(R, np.diag(GL) @ Rotation.from_rotvec(t["handPose"][:3]).as_matrix(), atol=1e-6)
    test = build_dataset(cfg, "test")
    assert len(test) == 2
    for i, t in enumerate(truth["test"]):
        s = test[i]
        np.testing.assert_allclose(s["root_cam"], t["root_cv"], atol=1e-6)
        assert s["valid_joints_cam"] == 0 and s["valid_mano"] == 0
        b = t["box"]  # the evaluation box through process_bbox(.., 1.5), as the official test loader
        want = official_process_bbox(np.array([b[0], b[1], b[2] - b[0], b[3] - b[1]]), W, H, 1.5)
        np.testing.assert_allclose(s["bbox"], want, atol=1e-3)


def test_ho3d_v3_reads_the_same_conventions(tmp_path, mano):
    truth = write_ho3d(tmp_path, mano)
    for p in tmp_path.glob("*/*/rgb/*.png"):
        from PIL import Image

        Image.open(p).save(p.with_suffix(".jpg"), quality=95)
        p.unlink()
    ds = build_dataset(config("ho3d", tmp_path, mano, "data.version=v3"), "train")
    assert contract_error(ds[0], hand(mano, TIPS["ho3d"]))[0] < TOL
    np.testing.assert_allclose(ds[0]["joints_cam"], truth["train"][0]["joints_cv"], atol=1e-6)


# ---------------------------------------------------------------------------------------------- DexYCB
@pytest.mark.parametrize("annotations", ["official", "handoccnet"])
def test_dexycb_contract_right_and_left_hands(tmp_path, mano, annotations):
    truth = write_dexycb(tmp_path, mano)
    write_dexycb_handoccnet(tmp_path, mano, truth)
    cfg = config("dexycb", tmp_path, mano, f"data.annotations={annotations}", "data.augment=true")
    right_ref, left_ref = hand(mano, TIPS["manopth_right"]), TIPS["manopth_left"]
    seen = {"right": 0, "left": 0}
    for split in ("train", "test") if annotations == "handoccnet" else ("train", "val", "test"):
        ds = build_dataset(cfg, split, train=split == "train")
        rows = [t for t in truth if t["split"] == split]
        assert len(ds) == len(rows)  # the frame without a hand is skipped (official layout)
        for i in range(len(ds)):
            s = ds[i]
            side = s["hand_side"]
            seen[side] += 1
            ej, _ = contract_error(s, right_ref, None if side == "right" else left_ref)
            assert ej < TOL, (split, i, side, ej)
            check_projection(s, 128)
    assert seen["left"] >= 2 and seen["right"] >= 6
    # un-augmented labels against the annotation: left hands are the mirror image, same shape
    ds = build_dataset(cfg, "test")
    (t,) = [t for t in truth if t["split"] == "test"]
    s = ds[0]
    assert s["hand_side"] == "left" and t["side"] == "left"
    np.testing.assert_allclose(s["joints_cam"], t["joints"] * np.array([-1.0, 1.0, 1.0]), atol=1e-6)
    np.testing.assert_allclose(s["betas"], t["betas"], atol=1e-6)  # the left file mirrors the right: same shape
    assert (
        ds.records[0].submission_id == t["image_id"] == 1
    )  # the toolkit's index counts the frame without a hand before it


@pytest.mark.parametrize("annotations", ["official", "handoccnet"])
def test_dexycb_left_hands_with_the_official_left_file(tmp_path, mano_official_left, annotations):
    """The official MANO_LEFT.pkl keeps the right file's x shape directions (smplx#48) and DexYCB was
    fitted with it: its mirrored left hand is not exactly the right hand of the same betas. The
    labels keep the pose exact, the betas as annotated and the wrist where it is; the contract then
    misses by the shape difference alone, bounded by the rest-shape gap 2 |shapedirs_x @ betas|
    carried along the fingers."""
    mano = mano_official_left
    truth = write_dexycb(tmp_path, mano)
    write_dexycb_handoccnet(tmp_path, mano, truth)
    s = build_dataset(
        config("dexycb", tmp_path, mano, "data.augment=false", f"data.annotations={annotations}"), "test"
    )[0]
    (t,) = [t for t in truth if t["split"] == "test"]
    assert s["hand_side"] == "left"
    np.testing.assert_allclose(s["betas"], t["betas"], atol=1e-6)
    joints, _ = contract_joints(s, hand(mano, TIPS["manopth_right"]), TIPS["manopth_left"])
    np.testing.assert_allclose(joints[0], t["joints"][0] * np.array([-1.0, 1.0, 1.0]), atol=TOL)  # the wrist is exact
    gap = float(np.abs(2 * mano.right["shapedirs_full"][:, 0, :10] @ t["betas"]).max())
    ej = float(np.abs(joints - s["joints_cam"]).max())
    assert 1e-4 < ej < 8 * gap, (ej, gap)


def test_handoccnet_dexycb_boxes_are_the_official_functions(tmp_path, mano):
    truth = write_dexycb(tmp_path, mano)
    write_dexycb_handoccnet(tmp_path, mano, truth)
    ds = build_dataset(config("dexycb", tmp_path, mano, "data.annotations=handoccnet"), "test")
    (t,) = [t for t in truth if t["split"] == "test"]
    box = official_process_bbox(official_get_bbox(pixels(t["joints"]), 1.5), W, H, 1.0)
    assert pixels(t["joints"])[:, 0].min() < 0  # the hand leaves the image on the left: the box is clipped
    box[0] = W - box[0] - box[2] - 1  # the official flip of a left hand's box: centre x -> W - x - 1
    np.testing.assert_allclose(ds[0]["bbox"], box, atol=1e-3)
    assert ds.records[0].submission_id == t["image_id"]


def test_handoccnet_training_boxes_and_empty_ones_skipped(tmp_path, mano):
    import json

    truth = write_dexycb(tmp_path, mano)
    write_dexycb_handoccnet(tmp_path, mano, truth)
    path = tmp_path / "annotations" / "DEX_YCB_s0_train_data.json"
    data = json.loads(path.read_text())
    off = dict(data["annotations"][0], id=999, image_id=999, joints_img=[[-50.0 - i, -40.0] for i in range(21)])
    data["images"].append(dict(data["images"][0], id=999))
    data["annotations"].append(off)  # a hand wholly outside the image: the official loader has no box for it, skips it
    path.write_text(json.dumps(data))
    ds = build_dataset(config("dexycb", tmp_path, mano, "data.annotations=handoccnet", "data.augment=false"), "train")
    rows = [t for t in truth if t["split"] == "train"]
    assert len(ds) == len(rows) - round(0.05 * (len(rows) + 1)) and 999 not in [r.submission_id for r in ds.records]
    for i, r in enumerate(ds.records):
        t = next(t for t in rows if t["image_id"] == r.submission_id)
        box = official_process_bbox(official_get_bbox(pixels(t["joints"]), 1.5), W, H, 1.0)
        if t["side"] == "left":
            box[0] = W - box[0] - box[2] - 1
        np.testing.assert_allclose(ds[i]["bbox"], box, atol=1e-3)


# ---------------------------------------------------------------------------------------------- errors
def test_real_datasets_need_the_mano_file(tmp_path, mano):
    write_freihand(tmp_path, mano, n_train=2, n_eval=1)
    cfg = load_config("freihand", [f"data.root={tmp_path}"])
    with pytest.raises(ValueError, match="model.hand_model"):
        build_dataset(cfg, "test")
    with pytest.raises(ValueError, match="model.hand_model"):  # nor the network's built-in hand
        build_dataset(cfg, "test", hand_model=HandModel.default())


def test_dexycb_left_hand_without_the_left_file_names_the_key(tmp_path, mano):
    write_dexycb(tmp_path, mano)
    mano.left_path.rename(mano.left_path.with_name("elsewhere.pkl"))
    try:
        with pytest.raises(DatasetLayoutError, match="data.hand_model_left"):
            build_dataset(config("dexycb", tmp_path, mano), "test")
        ds = build_dataset(
            config("dexycb", tmp_path, mano, f"data.hand_model_left={mano.left_path.with_name('elsewhere.pkl')}"),
            "test",
        )
        assert ds[0]["hand_side"] == "left"
    finally:
        mano.left_path.with_name("elsewhere.pkl").rename(mano.left_path)


def test_synthetic_samples_meet_the_same_contract():
    cfg = load_config(
        "synthetic", ["model.input_size=128", "data.train_size=4", "data.augment=true", "data.renderer=numpy"]
    )
    ds = build_dataset(cfg, "train", train=True)
    ref = HandModel.default(dtype=torch.float64)
    for i in range(4):
        ej, ev = contract_error(ds[i], ref)
        assert ej < TOL and ev < TOL, (i, ej, ev)


def test_val_fraction_zero_trains_on_the_whole_handoccnet_file(tmp_path, mano):
    """The official code has no validation split: data.val_fraction=0 trains on every entry."""
    truth = write_dexycb(tmp_path, mano)
    write_dexycb_handoccnet(tmp_path, mano, truth)
    rows = [t for t in truth if t["split"] == "train"]
    cfg = config("dexycb", tmp_path, mano, "data.annotations=handoccnet", "data.val_fraction=0")
    assert len(build_dataset(cfg, "train")) == len(rows) and len(build_dataset(cfg, "val")) == 0
    cfg = config("dexycb", tmp_path, mano, "data.annotations=handoccnet", "data.val_fraction=0.25")
    assert len(build_dataset(cfg, "val")) == round(0.25 * len(rows))
    with pytest.raises(ValueError, match="data.val_fraction"):
        config("dexycb", tmp_path, mano, "data.val_fraction=1")
