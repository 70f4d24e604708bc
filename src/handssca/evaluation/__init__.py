"""Official hand-pose metrics, benchmark protocols and submission files (their public names, re-exported)."""

from handssca.evaluation.files import (
    FileFormatError,
    read_dexycb_results,
    read_points_json,
    read_pred_json,
    write_dexycb_results,
    write_freihand_pred,
    write_ho3d_pred,
)
from handssca.evaluation.metrics import (
    fscore,
    mean_fscore,
    pck_measures,
    point_errors,
    procrustes_align,
    root_align,
    scale_translation_align,
)
from handssca.evaluation.protocols import Report, evaluate_dexycb, evaluate_freihand, evaluate_ho3d

__all__ = [
    "FileFormatError",
    "Report",
    "evaluate_dexycb",
    "evaluate_freihand",
    "evaluate_ho3d",
    "fscore",
    "mean_fscore",
    "pck_measures",
    "point_errors",
    "procrustes_align",
    "read_dexycb_results",
    "read_points_json",
    "read_pred_json",
    "root_align",
    "scale_translation_align",
    "write_dexycb_results",
    "write_freihand_pred",
    "write_ho3d_pred",
]
