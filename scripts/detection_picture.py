"""Draw ``docs/detection.png``: what the bundled detector finds in a picture of two rendered hands.

    python scripts/detection_picture.py [--out docs/detection.png]

A right hand (its back to the camera) and the mirrored picture of one, i.e. a left hand, rendered from
the package's own hand (``tests/detect/hand_images.py``); drawn: each hand's landmarks, its box and its
side as ``HandDetector`` reports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handssca.detect import HandDetector  # noqa: E402
from handssca.pictures.draw import SIDE_COLORS, draw_boxes, draw_joints  # noqa: E402
from tests.detect.hand_images import render_right_hand  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "detection.png")
    args = ap.parse_args()
    right = render_right_hand(size=300, roll_deg=-15.0)[0]
    left = render_right_hand(size=300, roll_deg=-30.0)[0][:, ::-1]
    image = np.ascontiguousarray(np.concatenate([right, left], axis=1))
    hands = HandDetector()(image)
    out = image
    for h in hands:
        out = draw_joints(out, h.keypoints_2d, color=SIDE_COLORS[h.hand_side], radius=3)
    labels = [f"{h.hand_side} {h.side_score:.2f}" for h in hands]
    out = draw_boxes(out, [h.bbox for h in hands], labels, [SIDE_COLORS[h.hand_side] for h in hands])
    Image.fromarray(out).save(args.out)
    print(f"wrote {args.out}: {len(hands)} hands, " + ", ".join(labels))


if __name__ == "__main__":
    main()
