"""The synthetic pictures of :class:`SyntheticHands`: occluded hands rendered on the CPU, drawn straight into a view.

A scene is described once in the coordinates of its *canvas* (the camera K and a square image of
``canvas`` pixels) by plain data drawn from a random generator; a *view* is a similarity map M
(2x3, canvas pixels -> view pixels, see :func:`handssca.data.transforms.crop_affine`) and its size.
Everything draws a view directly (no canvas is ever rendered, then cropped): backgrounds and
flat occluders through Pillow's affine sampling, the hand and 3D objects by the renderer with the
crop's intrinsics. Prepared once per process: the photos (with 2x and 4x reductions), mesh templates
of the held objects and a bank of camera noise.

``dataset.py`` (:class:`SyntheticHands`: a sample's scene drawn and rendered), ``photos.py`` (photos and
procedural backgrounds), ``occluders.py`` (flat shapes, held objects, solids in front), ``forearm.py``,
``lighting.py`` (light, skin tones, the darkening between fingers), ``camera.py`` (blur, noise, JPEG),
``composition.py`` (the crop's labels, the hand's skin, shadows, flat occluders painted in), ``views.py``
(the view's map).
"""

from handssca.data.synthetic.dataset import MAX_OCCLUSION, SPLITS, SyntheticHands

__all__ = ["MAX_OCCLUSION", "SPLITS", "SyntheticHands"]
