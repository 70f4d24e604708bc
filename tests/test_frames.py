"""frames.py: every mirror is its own inverse, numpy and torch agree, and the image-side mirrors
(pixels, boxes, intrinsics, images) agree with the 3D ones through the projection."""

import numpy as np
import torch

from handssca import frames as F


def test_each_function_is_its_own_inverse_and_torch_matches_numpy():
    rng = np.random.default_rng(0)
    pts, pose = rng.normal(size=(5, 3)), rng.normal(size=48)
    for f, x in ((F.mirror_points, pts), (F.opengl_to_opencv, pts), (F.mirror_pose, pose)):
        np.testing.assert_allclose(f(f(x)), x)
        np.testing.assert_allclose(f(torch.tensor(x)).numpy(), f(x))
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    np.testing.assert_array_equal(F.mirror_faces(F.mirror_faces(faces)), faces)
    np.testing.assert_allclose(F.mirror_pose(pose.reshape(16, 3)), F.mirror_pose(pose).reshape(16, 3))
    np.testing.assert_allclose(F.pixels_to_joints_img(F.joints_img_to_pixels(pts[:, :2], 64), 64), pts[:, :2])


def test_mirrored_points_project_onto_mirrored_pixels_of_the_mirrored_image():
    rng = np.random.default_rng(1)
    W, H = 97, 64
    K = np.array([[80.0, 0, 40.3], [0, 80.0, 30.0], [0, 0, 1]])
    X = rng.normal(size=(21, 3)) * 0.05 + [0, 0, 0.5]
    np.testing.assert_allclose(
        F.project(F.mirror_points(X), F.mirror_intrinsics(K, W)), F.mirror_pixels(F.project(X, K), W)
    )
    image = rng.integers(0, 255, (H, W, 3))
    u, v = 10, 20
    assert (F.mirror_image(image)[v, int(F.mirror_pixels(np.array([[u, v]]), W)[0, 0])] == image[v, u]).all()
    box = np.array([12.0, 5.0, 30.0, 20.0])  # its centre moves as a point does
    centre = box[:2] + box[2:] / 2
    mb = F.mirror_box(box, W)
    np.testing.assert_allclose(mb[:2] + mb[2:] / 2, F.mirror_pixels(centre[None], W)[0])
    np.testing.assert_allclose(F.mirror_box(mb, W), box)
    whole = F.whole_image_box(W, H)  # centred on the image: its own mirror
    np.testing.assert_allclose(F.mirror_box(whole, W), whole)


def test_pixel_scale_keeps_the_image_edge():
    from handssca.frames import pixel_scale

    A = pixel_scale(2.0, 4.0)
    edge = A @ [-0.5, -0.5, 1.0]
    np.testing.assert_allclose(edge[:2], [-0.5, -0.5])
    np.testing.assert_allclose((A @ [3.5, 7.5, 1.0])[:2], [1.5, 1.5])  # pixel 4 edge -> pixel 2 edge


def test_sampled_region_margins_and_clip():
    from handssca.frames import sampled_region

    assert sampled_region((10.2, 5.0), (20.1, 9.5), 100, 100) == (8, 3, 24, 13)
    assert sampled_region((-5.0, -5.0), (200.0, 50.0), 100, 60) == (0, 0, 100, 53)
    assert sampled_region((-5.0, -5.0), (200.0, 50.0), 100, 60, clip=False) == (-7, -7, 203, 53)
