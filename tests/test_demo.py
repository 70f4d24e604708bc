import re

import numpy as np
from PIL import Image

from handssca.config import load_config
from handssca.demo import write_report


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))


def test_demo_report_states_the_numbers_and_the_data_it_was_trained_on(tmp_path):
    png = tmp_path / "f.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png)
    figures = {"curve": png, "pck": png}
    cfg = load_config("demo")
    metrics = {
        "pa_mpjpe_mm": 18.0,
        "pa_mpjpe_mm_meanpose": 20.0,
        "mpjpe_rr_mm": 60.0,
        "mpjpe_rr_mm_meanpose": 80.0,
        "joints_img_px": 12.5,
        "samples": 150,
    }
    text = _text(write_report(tmp_path, cfg, metrics, 420.0, {"step": 416}, figures, []).read_text())
    assert "416 steps of 8 images" in text and "7.0 minutes" in text
    assert "is 60.0 mm, against 80.0 mm" in text and "25% lower" in text
    assert "(PA-MPJPE) is 18.0 mm against 20.0 mm for the mean pose (10% lower)" in text
    assert "has started to learn the fingers' articulation" in text
    assert (
        "palm or back towards the camera within 30 degrees, turned at most 30 degrees in the image; at most 1 occluder"
        in text
    )
    # worse than the mean pose, any view: no claim of learning, no view limits
    cfg = load_config("demo", ["data.synthetic_max_tilt_deg=180"])
    metrics["pa_mpjpe_mm"] = 30.0
    text = _text(write_report(tmp_path, cfg, metrics, 420.0, {"step": 416}, figures, []).read_text())
    assert "(50% higher): finger articulation takes far longer" in text
    assert "started to learn" not in text and "palm or back" not in text
