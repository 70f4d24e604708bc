"""Files written for a reconstructed hand: meshes (.obj, .ply), JSON, overlay and side-view pictures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from handssca.io.meshes import write_obj, write_ply
from handssca.results import HandPrediction


def save_prediction(
    pred: HandPrediction,
    image: np.ndarray,
    out_dir: str | os.PathLike,
    stem: str,
    render=None,
    source: str | os.PathLike | None = None,
    pictures: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Path]:
    """Write <stem>.obj, .ply, .json, _overlay.png and _side.png for one HandPrediction.

    ``image``: the picture the hand was found in, at its original size (``pred.image_size``) or reduced
    (a working copy of a large file); the overlay is drawn at that size (at most
    :data:`handssca.pictures.prediction.OVERLAY_MAX_SIDE` pixels long), while the JSON keeps
    original-image pixels. ``source``: the input file, recorded in the JSON. ``pictures``: the
    (overlay, side view) of :func:`~handssca.pictures.prediction.prediction_pictures` when the caller
    already drew them.
    """
    from PIL import Image

    from handssca.pictures.prediction import prediction_pictures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [
        write_obj(out / f"{stem}.obj", pred.vertices, pred.faces),
        write_ply(out / f"{stem}.ply", pred.vertices, pred.faces),
    ]
    info = pred.to_json()
    if source is not None:
        info["input_file"] = str(source)
    (out / f"{stem}.json").write_text(json.dumps(info, indent=1))
    files.append(out / f"{stem}.json")
    overlay, side = pictures if pictures is not None else prediction_pictures(pred, image, render)
    Image.fromarray(overlay).save(out / f"{stem}_overlay.png")
    files.append(out / f"{stem}_overlay.png")
    Image.fromarray(side).save(out / f"{stem}_side.png")
    files.append(out / f"{stem}_side.png")
    return files
