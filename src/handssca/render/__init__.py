"""CPU rendering of hand meshes: a numpy z-buffer rasteriser (no display, no GL context) and lit scenes."""

from handssca.render.raster import (
    ImageLayer,
    Lighting,
    MeshPart,
    Rendering,
    SceneRendering,
    rasterize,
    render_mesh,
    render_scene,
    vertex_normals,
)

__all__ = [
    "ImageLayer",
    "Lighting",
    "MeshPart",
    "Rendering",
    "SceneRendering",
    "rasterize",
    "render_mesh",
    "render_scene",
    "vertex_normals",
]
