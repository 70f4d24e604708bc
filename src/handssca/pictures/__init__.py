"""Pictures people look at, in one place: drawing on images (``draw``), contact sheets (``sheets``),
figures of results (``figures``) and the pictures of one prediction (``prediction``). Functions
return images or figures; callers save them."""

from handssca.pictures.draw import BONES, draw_joints, orbit_view, side_view
from handssca.pictures.figures import best_worst, learning_curve, pck_figure, save_figure
from handssca.pictures.sheets import hand_sheet, sample_grid

__all__ = [
    "BONES",
    "best_worst",
    "draw_joints",
    "hand_sheet",
    "learning_curve",
    "orbit_view",
    "pck_figure",
    "sample_grid",
    "save_figure",
    "side_view",
]
