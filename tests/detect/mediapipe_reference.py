"""Run MediaPipe's own hand tracker (``mediapipe==0.10.21``, legacy ``solutions.hands``) on image files.

    HANDSSCA_MEDIAPIPE_PYTHON=/path/to/python-with-mediapipe  (a separate environment: mediapipe pins numpy < 2)
    $HANDSSCA_MEDIAPIPE_PYTHON tests/detect/mediapipe_reference.py IMAGE [IMAGE ...]

Prints one JSON list per image: every hand MediaPipe finds, with its 21 landmarks in pixels (x * W,
y * H of MediaPipe's normalised coordinates), its 21 world landmarks (metres, as MediaPipe gives them)
and its handedness label and score as MediaPipe gives them (labels for a mirrored picture). Used by ``test_detector.py`` as an optional whole-pipeline reference.
"""

import json
import sys

import mediapipe as mp
import numpy as np
from PIL import Image


def main() -> None:
    with mp.solutions.hands.Hands(
        static_image_mode=True, max_num_hands=4, model_complexity=1, min_detection_confidence=0.5
    ) as hands:
        for path in sys.argv[1:]:
            image = np.asarray(Image.open(path).convert("RGB"))
            h, w = image.shape[:2]
            result = hands.process(image)
            found = []
            worlds = result.multi_hand_world_landmarks or []
            for k, (lms, side) in enumerate(zip(result.multi_hand_landmarks or [], result.multi_handedness or [])):
                pts = [[lm.x * w, lm.y * h] for lm in lms.landmark]
                world = [[lm.x, lm.y, lm.z] for lm in worlds[k].landmark] if k < len(worlds) else None
                cls = side.classification[0]
                found.append({"landmarks": pts, "world": world, "label": cls.label, "score": cls.score})
            print(json.dumps(found))


if __name__ == "__main__":
    main()
