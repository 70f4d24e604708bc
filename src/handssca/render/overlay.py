"""Meshes drawn over images (predictions on inputs), on the CPU."""

from __future__ import annotations

import numpy as np

from handssca.render.raster import SKIN


def overlay_mesh(
    image: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    render=None,
    alpha: float = 0.8,
    color: tuple[float, float, float] = (0.55, 0.75, 0.95),
) -> np.ndarray:
    """Blend the shaded mesh (camera frame, metres) over ``image`` (H,W,3 float in [0,1]); returns float (H,W,3).

    ``render`` is a callable from :func:`handssca.render.gl.make_renderer`; None uses the numpy rasteriser.
    """
    if render is None:
        from handssca.render.gl import make_renderer

        render = make_renderer("numpy")
    img = np.asarray(image, dtype=np.float32)
    r = render(np.asarray(vertices, dtype=np.float64), faces, K, img.shape[:2], color=color)
    out = img.copy()
    m = r.mask
    out[m] = alpha * r.rgb[m] + (1 - alpha) * img[m]
    return out


__all__ = ["SKIN", "overlay_mesh"]
