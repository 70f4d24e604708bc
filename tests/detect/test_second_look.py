"""The detector's second look at a picture where it finds no hand (contrast stretched, then brightened)."""

from __future__ import annotations

import numpy as np
import pytest

from handssca.detect import HandDetector
from handssca.detect.second_look import GAMMA, brighten, contrast_stretch, second_looks
from tests.detect.hand_images import render_right_hand


def test_contrast_stretch_maps_the_percentiles_to_black_and_white():
    rng = np.random.default_rng(0)
    grey = rng.integers(20, 61, size=(100, 100)).astype(np.uint8)  # luminance 20..60
    image = np.repeat(grey[..., None], 3, axis=2)
    lo, hi = np.percentile(grey.astype(np.float64), [1, 99])
    out = contrast_stretch(image)
    expected = np.clip(np.round((grey - lo) * 255.0 / (hi - lo)), 0, 255)
    assert np.abs(out[..., 0].astype(np.float64) - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255


def test_brighten_is_a_gamma_curve_keeping_black_and_white():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = brighten(x).astype(np.float64)
    assert np.abs(out - 255.0 * (x / 255.0) ** GAMMA).max() <= 0.5
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and (out >= x).all()


def test_a_flat_picture_gets_no_second_look():
    assert second_looks(np.full((50, 60, 3), 90, np.uint8)) == []
    assert len(second_looks(np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8))) == 2


@pytest.fixture(scope="module")
def detectors():
    return HandDetector(), HandDetector(second_look=False)


def test_a_dim_hand_is_found_on_the_second_look_in_the_pictures_own_pixels(detectors):
    on, off = detectors
    image = render_right_hand(size=256)[0]
    (bright,) = off(image)
    dim = np.round(image.astype(np.float32) * 0.1).astype(np.uint8)  # a 10x darker exposure
    assert off(dim) == []  # MediaPipe's single look misses it
    (hand,) = on(dim)
    assert hand.hand_side == "right"
    assert np.abs(hand.keypoints_2d - bright.keypoints_2d).mean() < 3.0  # pixels of the 256 px picture
    assert np.abs(hand.bbox - bright.bbox).max() < 8.0


def test_no_hand_is_made_up_on_a_second_look(detectors):
    on, _ = detectors
    rng = np.random.default_rng(2)
    for _ in range(3):
        dim_noise = (rng.random((240, 320, 3)) * 60).astype(np.uint8)
        assert on(dim_noise) == []
