import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handssca.frames import mirror_faces, mirror_points, mirror_pose
from handssca.hand import HandModel

from .mano_files import write_model

smplx = pytest.importorskip("smplx")


def smplx_model(path, side, use_pca, ncomps, flat):
    return smplx.MANO(
        str(path),
        is_rhand=side == "right",
        use_pca=use_pca,
        num_pca_comps=ncomps,
        flat_hand_mean=flat,
        dtype=torch.float64,
        batch_size=3,
    )


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("use_pca", [False, True])
def test_matches_smplx(tmp_path, side, flat, use_pca):
    official, arrays = write_model(tmp_path, "official", seed=3, side=side)
    plain, _ = write_model(tmp_path, "plain", side=side, arrays=arrays)  # smplx needs chumpy for the official file
    ours = HandModel.from_file(official, flat_hand_mean=flat, use_pca=use_pca, num_pca_comps=6, dtype=torch.float64)
    assert ours.side == side
    ref = smplx_model(plain, side, use_pca, 6, flat)
    g = torch.Generator().manual_seed(0)
    orient = torch.randn(3, 3, generator=g, dtype=torch.float64)
    pose = torch.randn(3, 6 if use_pca else 45, generator=g, dtype=torch.float64) * 0.5
    betas = torch.randn(3, 10, generator=g, dtype=torch.float64)
    transl = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.1
    a = ours(global_orient=orient, hand_pose=pose, betas=betas, transl=transl)
    b = ref(global_orient=orient, hand_pose=pose, betas=betas, transl=transl)
    torch.testing.assert_close(a["vertices"], b.vertices, atol=1e-7, rtol=0)
    torch.testing.assert_close(a["joints16"], b.joints[:, :16], atol=1e-7, rtol=0)


def test_pca45_is_a_projection_not_axis_angle(tmp_path):
    path, arrays = write_model(tmp_path, "npz", seed=4)
    pca = HandModel.from_file(path, use_pca=True, num_pca_comps=45, flat_hand_mean=True, dtype=torch.float64)
    aa = HandModel.from_file(path, use_pca=False, flat_hand_mean=True, dtype=torch.float64)
    c = torch.randn(2, 45, dtype=torch.float64) * 0.3
    comps = torch.tensor(arrays["hands_components"])
    v_pca = pca(global_orient=torch.zeros(2, 3, dtype=torch.float64), hand_pose=c)["vertices"]
    v_aa = aa(global_orient=torch.zeros(2, 3, dtype=torch.float64), hand_pose=c @ comps)["vertices"]
    torch.testing.assert_close(v_pca, v_aa)
    v_raw = aa(global_orient=torch.zeros(2, 3, dtype=torch.float64), hand_pose=c)["vertices"]
    assert (v_pca - v_raw).abs().max() > 1e-3


def _closed_form_model(tmp_path):
    path, arrays = write_model(tmp_path, "npz", seed=5)
    return HandModel.from_file(path, flat_hand_mean=True, dtype=torch.float64), arrays


def test_zero_pose_is_the_template(tmp_path):
    m, arrays = _closed_form_model(tmp_path)
    out = m(global_orient=torch.zeros(1, 3, dtype=torch.float64), hand_pose=torch.zeros(1, 45, dtype=torch.float64))
    np.testing.assert_allclose(out["vertices"][0].numpy(), arrays["v_template"], atol=1e-12)
    np.testing.assert_allclose(out["joints16"][0].numpy(), arrays["J_regressor"] @ arrays["v_template"], atol=1e-12)


def test_global_rotation_about_the_wrist_and_translation(tmp_path):
    m, arrays = _closed_form_model(tmp_path)
    rot = Rotation.random(random_state=3)
    t = np.array([0.1, -0.2, 0.5])
    out = m(
        global_orient=torch.tensor(rot.as_rotvec())[None],
        hand_pose=torch.zeros(1, 45, dtype=torch.float64),
        transl=torch.tensor(t)[None],
    )
    v = arrays["v_template"]
    j0 = arrays["J_regressor"][0] @ v
    expected = (v - j0) @ rot.as_matrix().T + j0 + t
    np.testing.assert_allclose(out["vertices"][0].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(out["transforms"][0, 0, :3, :3].numpy(), rot.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(out["transforms"][0, :, :3, 3].numpy(), out["joints16"][0].numpy())


def test_rotmats_input_equals_axis_angle_input(tmp_path):
    m, _ = _closed_form_model(tmp_path)
    pose = torch.randn(2, 48, dtype=torch.float64) * 0.4
    a = m(global_orient=pose[:, :3], hand_pose=pose[:, 3:])
    R = torch.tensor(Rotation.from_rotvec(pose.reshape(-1, 3).numpy()).as_matrix()).reshape(2, 16, 3, 3)
    b = m(rotmats=R)
    torch.testing.assert_close(a["vertices"], b["vertices"])


def test_joints21_order_and_fingertips(tmp_path):
    m, _ = _closed_form_model(tmp_path)
    out = m(global_orient=torch.zeros(1, 3, dtype=torch.float64), hand_pose=torch.zeros(1, 45, dtype=torch.float64))
    j, j16, v = out["joints"][0], out["joints16"][0], out["vertices"][0]
    torch.testing.assert_close(j[0], j16[0])
    torch.testing.assert_close(j[1:4], j16[13:16])  # thumb
    torch.testing.assert_close(j[5:8], j16[1:4])  # index
    torch.testing.assert_close(j[13:16], j16[10:13])  # ring
    torch.testing.assert_close(j[17:20], j16[7:10])  # pinky
    torch.testing.assert_close(j[[4, 8, 12, 16, 20]], v[[745, 317, 444, 556, 673]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_dtypes_and_batch_one(dtype):
    m = HandModel.default().to(dtype)
    orient = torch.zeros(1, 3, dtype=dtype, requires_grad=True)
    pose = (torch.randn(1, 45, dtype=dtype) * 0.2).requires_grad_()
    betas = torch.randn(1, 10, dtype=dtype, requires_grad=True)
    transl = torch.zeros(1, 3, dtype=dtype, requires_grad=True)
    out = m(global_orient=orient, hand_pose=pose, betas=betas, transl=transl)
    assert out["vertices"].dtype == dtype
    (out["vertices"].square().sum() + out["joints"].sum()).backward()
    for t in (orient, pose, betas, transl):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def _mirror_arrays(arrays, fix_shapedirs=True):
    m = np.array([-1.0, 1.0, 1.0])
    left = dict(arrays)
    left["v_template"] = arrays["v_template"] * m
    left["shapedirs_full"] = arrays["shapedirs_full"] * (m[None, :, None] if fix_shapedirs else 1.0)
    sign = (m[:, None] * m[None, :]).ravel()
    left["posedirs"] = (arrays["posedirs"].reshape(-1, 3, 15, 9) * m[None, :, None, None] * sign).reshape(-1, 3, 135)
    left["f"] = arrays["f"][:, [0, 2, 1]]
    left["hands_mean"] = (arrays["hands_mean"].reshape(15, 3) * [1, -1, -1]).ravel()
    return left


@pytest.mark.parametrize("fix", [False, True])
def test_left_hand_is_the_mirror_of_the_right(tmp_path, fix):
    right_path, arrays = write_model(tmp_path, "npz", seed=6, side="right")
    (tmp_path / "l").mkdir()
    # official left files carry the shapedirs bug: x components not negated
    left_path, _ = write_model(tmp_path / "l", "npz", side="left", arrays=_mirror_arrays(arrays, fix_shapedirs=False))
    right = HandModel.from_file(right_path, dtype=torch.float64)
    left = HandModel.from_file(left_path, fix_left_shapedirs=fix, dtype=torch.float64)
    assert left.side == "left"
    g = torch.Generator().manual_seed(1)
    pose = torch.randn(2, 48, generator=g, dtype=torch.float64) * 0.5
    betas = torch.randn(2, 10, generator=g, dtype=torch.float64)
    transl = torch.randn(2, 3, generator=g, dtype=torch.float64) * 0.1
    lo = left(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas, transl=transl)
    mp = mirror_pose(pose)
    ro = right(global_orient=mp[:, :3], hand_pose=mp[:, 3:], betas=betas, transl=mirror_points(transl))
    err = (mirror_points(lo["vertices"]) - ro["vertices"]).abs().max()
    assert (err < 1e-10) if fix else (err > 1e-3)
    np.testing.assert_array_equal(mirror_faces(left.faces), right.faces)


def test_default_hand_left_is_exact_mirror():
    right, left = HandModel.default("right", dtype=torch.float64), HandModel.default("left", dtype=torch.float64)
    pose = torch.randn(3, 48, dtype=torch.float64) * 0.4
    betas = torch.randn(3, 10, dtype=torch.float64)
    lo = left(global_orient=pose[:, :3], hand_pose=pose[:, 3:], betas=betas)
    mp = mirror_pose(pose)
    ro = right(global_orient=mp[:, :3], hand_pose=mp[:, 3:], betas=betas)
    torch.testing.assert_close(mirror_points(lo["vertices"]), ro["vertices"])
    torch.testing.assert_close(mirror_points(lo["joints"]), ro["joints"])


def test_bad_arguments_are_named():
    m = HandModel.default()
    with pytest.raises(ValueError, match="hand_pose: expected"):
        m(global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 44))
    with pytest.raises(ValueError, match="betas: expected"):
        m(global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45), betas=torch.zeros(1, 9))
    with pytest.raises(ValueError, match="fingertips"):
        HandModel.default(fingertips="nope")
