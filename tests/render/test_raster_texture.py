"""The texture lookup's conventions, against hand-written texels (independent of the renderers)."""

import numpy as np

from handssca.render.raster import sample_texture


def test_v_zero_is_the_bottom_row_and_u_zero_the_left_column():
    # a 2 x 2 texture: rows top to bottom as stored in an image
    tex = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
    uv = np.array([[0.25, 0.75], [0.75, 0.75], [0.25, 0.25], [0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(sample_texture(tex, uv)[:, 0], [1.0, 2.0, 3.0, 4.0, 2.5])
