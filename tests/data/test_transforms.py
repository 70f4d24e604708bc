import numpy as np

from handssca.data import transforms as T
from handssca.frames import project


def test_rotated_crop_keeps_projection_consistent():
    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    X = rng.normal(size=(21, 3)) * 0.05 + [0.05, -0.02, 0.6]
    px = project(X, K)
    bbox = T.square_bbox(T.bbox_from_points(px, 1.5))
    for rot in (0.0, 0.4, -1.0):
        M = T.crop_affine(bbox, 256, 1.2, rot)
        K2 = T.crop_intrinsics(K, M, rot)
        X2 = X @ T.rot_z(rot).T
        np.testing.assert_allclose(project(X2, K2), T.apply_affine(px, M), atol=1e-9)


def test_unrotated_crop_is_exact_for_non_square_pixels():
    K = np.array([[500.0, 0, 320], [0, 470.0, 240], [0, 0, 1]])
    X = np.array([[0.01, 0.02, 0.5], [-0.03, 0.0, 0.7]])
    M = T.crop_affine(np.array([200.0, 100, 300, 300]), 224)
    np.testing.assert_allclose(project(X, T.crop_intrinsics(K, M, 0.0)), T.apply_affine(project(X, K), M))


def test_warp_moves_a_pixel_where_the_affine_says():
    img = np.zeros((100, 120, 3), np.float32)
    img[40, 70] = 1.0
    M = T.crop_affine(np.array([50.0, 20, 40, 40]), 80, 1.0, 0.3)
    out = T.warp_image(img, M, 80)
    target = T.apply_affine(np.array([[70.0, 40.0]]), M)[0]
    peak = np.unravel_index(out[..., 0].argmax(), out.shape[:2])
    assert np.hypot(peak[1] - target[0], peak[0] - target[1]) < 1.0


def test_square_bbox_and_augment_ranges():
    assert T.square_bbox(np.array([0.0, 0, 0, 10]), (100, 100)) is None
    sq = T.square_bbox(np.array([10.0, 20, 40, 20]))
    np.testing.assert_allclose(sq, [10, 10, 40, 40])
    rng = np.random.default_rng(1)
    draws = [T.sample_augment(rng) for _ in range(2000)]
    scales = np.array([d.scale for d in draws])
    rots = np.rad2deg([d.rot for d in draws])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(rots).max() <= 60 and 0.55 < np.mean(rots != 0) < 0.65
    assert np.all([(0.8 <= c <= 1.2) for d in draws for c in d.color])


def test_rotate_root_composes_rotations():
    from scipy.spatial.transform import Rotation

    aa = np.array([0.3, -0.2, 0.9])
    R = T.rot_z(0.5)
    out = T.rotate_root(aa, R)
    np.testing.assert_allclose(
        Rotation.from_rotvec(out).as_matrix(), R @ Rotation.from_rotvec(aa).as_matrix(), atol=1e-12
    )
