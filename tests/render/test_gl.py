import numpy as np
import pytest
import torch

from handssca.hand import HandModel
from handssca.render.gl import gl_available, make_renderer
from handssca.render.raster import render_mesh

GL, GL_WHY = gl_available()


@pytest.mark.skipif(not GL, reason=f"no headless GL here: {GL_WHY}")
def test_gl_renderer_matches_the_numpy_rasteriser():
    hand = HandModel.default(dtype=torch.float64)
    render = make_renderer("gl")
    rng = np.random.default_rng(0)
    for k in range(3):
        pose = torch.tensor(rng.normal(0, 0.3, (1, 48)))
        v = hand(global_orient=pose[:, :3], hand_pose=pose[:, 3:])["vertices"][0].numpy()
        v = v - v.mean(0) + [0.01 * k, -0.01, 0.45]
        K = np.array([[260.0, 0, 95.5], [0, 260.0, 100.0], [0, 0, 1]])
        a = render(v, hand.faces, K, (192, 192)).mask
        b = render_mesh(v, hand.faces, K, (192, 192)).mask
        assert (a & b).sum() / (a | b).sum() > 0.99
