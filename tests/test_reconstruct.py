"""The flow predict and the web page share: modes, the checks made once, the order of the hands."""

import types

import numpy as np
import pytest

from handssca.reconstruct import Mode, Reconstruction, check_mode, left_to_right


def test_modes_and_their_check():
    assert check_mode("whole") is Mode.WHOLE and check_mode(Mode.BOX) is Mode.BOX
    with pytest.raises(ValueError, match="mode: expected one of 'detect', 'whole', 'box'; got 'detect hands'"):
        check_mode("detect hands")  # a label of the web page is not a mode


def test_side_and_box_are_checked_once_before_any_input():
    with pytest.raises(ValueError, match="hand_side"):
        Reconstruction(None, Mode.WHOLE, "both")
    with pytest.raises(ValueError, match="bbox"):
        Reconstruction(None, Mode.BOX, bbox=(0, 0, -1, 5))
    with pytest.raises(ValueError, match="a box goes with mode 'box'"):
        Reconstruction(None, Mode.DETECT, bbox=(0, 0, 5, 5))
    with pytest.raises(ValueError, match="a box goes with mode 'box'"):
        Reconstruction(None, Mode.BOX)
    run = Reconstruction(None, "box", "left", bbox=np.array([1, 2, 3, 4]))
    assert run.mode is Mode.BOX and run.bbox == (1.0, 2.0, 3.0, 4.0) and run.hand_side == "left"


def test_hands_are_numbered_left_to_right_by_their_box_centre():
    hands = [
        types.SimpleNamespace(bbox=np.array(b, dtype=float)) for b in ([50, 0, 10, 10], [0, 0, 80, 10], [20, 0, 5, 5])
    ]
    assert [h.bbox[0] for h in left_to_right(hands)] == [20, 0, 50]
