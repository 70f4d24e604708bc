"""Joint orders and the index maps between them (see docs/conventions.md)."""

from __future__ import annotations

import numpy as np

#: Names of the 21 joints in FreiHAND order, the package's internal order.
# one finger a line
# fmt: off
FREIHAND_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb4",
    "index1", "index2", "index3", "index4",
    "middle1", "middle2", "middle3", "middle4",
    "ring1", "ring2", "ring3", "ring4",
    "pinky1", "pinky2", "pinky3", "pinky4",
)
# fmt: on


#: Names of MANO's 16 skeleton joints in MANO order (pinky before ring).
# one finger a line
# fmt: off
MANO16_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
# fmt: on


#: MANO kinematic tree: parent of each of the 16 joints in MANO order (-1 for the root).
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

#: Index map from "MANO 16 joints + tips (thumb, index, middle, ring, pinky)" to FreiHAND order.
#: This is also HO3D order -> FreiHAND order, since HO3D order is MANO 16 + tips.
MANO_TO_FREIHAND = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
HO3D_TO_FREIHAND = MANO_TO_FREIHAND
#: FreiHAND order -> HO3D order (the inverse permutation of ``HO3D_TO_FREIHAND``).
FREIHAND_TO_HO3D = np.argsort(MANO_TO_FREIHAND)

#: Each of the 21 joints' parent in FreiHAND order (-1 for the wrist): along its finger, the MCPs and the
#: thumb's CMC hanging from the wrist.
FREIHAND_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
#: The 20 bones (parent, child) of the 21 FreiHAND-order joints, finger by finger: for drawing skeletons.
FREIHAND_BONES: tuple[tuple[int, int], ...] = tuple((p, j) for j, p in enumerate(FREIHAND_PARENTS) if p >= 0)

#: MANO joint (16, MANO order) -> its finger in FreiHAND's thumb..pinky numbering (0-4), -1 for the wrist / palm.
MANO_JOINT_FINGER = np.array([-1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 3, 3, 3, 0, 0, 0])
