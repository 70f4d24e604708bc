"""CPU rendering of hand meshes: a numpy z-buffer rasteriser (no display, no GL context)."""

from handssca.render.raster import Rendering, rasterize, render_mesh, vertex_normals

__all__ = ["Rendering", "rasterize", "render_mesh", "vertex_normals"]
