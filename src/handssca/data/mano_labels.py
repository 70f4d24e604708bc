"""Dataset MANO annotations -> the package's label convention (small pure numpy functions).

The package's convention (``data/sample.py``): ``pose`` (48) = global orientation in the OpenCV
camera frame + 15 finger joints relative to ``hands_mean`` (``flat_hand_mean=False``), ``betas``
(10) and ``transl`` (3, metres) such that ``hand(pose, betas) + transl`` is the hand in the camera
frame. Datasets store other conventions: HO3D an OpenGL-frame fit with ``flat_hand_mean=True``,
DexYCB manopth PCA coefficients with each side's own MANO file, FreiHAND no translation at all.
Everything here is float64 and takes the arrays of the configured hand model (:class:`ManoArrays`).

MANO rotates the whole hand about the rest-pose wrist ``J0(betas)``, which therefore does not move
with the pose: the posed wrist is ``J0(betas) + transl``. That is what makes the translations below
closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from handssca.frames import OPENGL_TO_OPENCV, mirror_points, mirror_pose

#: OpenGL <-> OpenCV camera frame as a rotation: diag(1, -1, -1), 180 degrees about x (its own inverse).
GL_TO_CV = np.diag(OPENGL_TO_OPENCV)


@dataclass(frozen=True)
class ManoArrays:
    """The float64 arrays of a MANO-format hand model that label conversions need.

    ``hands_mean`` (45) rad, ``components`` (45, 45) PCA rows, ``v_template`` (V, 3) m,
    ``shapedirs`` (V, 3, S) m per unit beta, ``J_regressor`` (16, V).
    """

    hands_mean: np.ndarray
    components: np.ndarray
    v_template: np.ndarray
    shapedirs: np.ndarray
    J_regressor: np.ndarray
    name: str = ""

    @classmethod
    def of(cls, hand) -> ManoArrays:
        """From a :class:`handssca.hand.HandModel` (any dtype; arrays come back float64)."""
        f64 = lambda t: t.detach().cpu().double().numpy().copy()  # noqa: E731
        if hand.use_pca and hand.num_pca_comps < 45:
            raise ValueError(
                f"{hand.data_name}: label conversion needs all 45 PCA components; the layer keeps {hand.num_pca_comps}"
            )
        return cls(
            f64(hand.full_hands_mean),
            f64(hand.hands_components),
            f64(hand.v_template),
            f64(hand.shapedirs),
            f64(hand.J_regressor),
            hand.data_name,
        )

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def rest_vertices(self, betas: np.ndarray) -> np.ndarray:
        """(V, 3) shaped rest mesh for betas (S') (the first S' shape components)."""
        b = np.asarray(betas, dtype=np.float64)
        return self.v_template + self.shapedirs[:, :, : b.shape[0]] @ b

    def rest_root(self, betas: np.ndarray) -> np.ndarray:
        """(3) rest-pose wrist J0(betas), metres: the point the global orientation rotates about."""
        return self.J_regressor[0] @ self.rest_vertices(betas)


def require_hand_model(hand_model, reader: str) -> ManoArrays:
    """The arrays of a reader's MANO model; a clear error instead of a silent fallback to another hand."""
    if hand_model is None:
        raise ValueError(
            f"{reader}: the MANO hand model is needed to convert the dataset's MANO labels "
            f"(hand_model=HandModel.from_file('MANO_RIGHT.pkl'); config key model.hand_model)"
        )
    return ManoArrays.of(hand_model)


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3)."""
    aa = np.asarray(aa, dtype=np.float64)
    return Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(*aa.shape[:-1], 3, 3)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) axis-angle."""
    R = np.asarray(R, dtype=np.float64)
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*R.shape[:-2], 3)


def relative_to_mean(full_pose: np.ndarray, hands_mean: np.ndarray) -> np.ndarray:
    """(48) pose with absolute finger rotations (``flat_hand_mean=True``) -> relative to ``hands_mean``."""
    out = np.array(full_pose, dtype=np.float64)
    out[3:] -= hands_mean
    return out


def pca_to_relative(global_orient: np.ndarray, coeffs: np.ndarray, components: np.ndarray) -> np.ndarray:
    """manopth ``use_pca=True, flat_hand_mean=False``: (3) orientation + (k) coefficients -> (48) package pose.

    The finger pose manopth applies is ``hands_mean + coeffs @ components[:k]``; relative to the mean
    that is ``coeffs @ components[:k]``.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    return np.concatenate([np.asarray(global_orient, dtype=np.float64), coeffs @ components[: coeffs.shape[0]]])


def rotate_hand(
    pose: np.ndarray, transl: np.ndarray, root_rest: np.ndarray, R: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the hand ``R @ (hand(pose, betas) + transl)`` for a rotation R about the camera centre.

    The global orientation becomes ``R @ Rot(pose[:3])``; the wrist ``root_rest + transl`` moves to
    ``R @ (root_rest + transl)``, so ``transl' = R @ (root_rest + transl) - root_rest``.
    Returns (pose (48), transl (3)).
    """
    out = np.array(pose, dtype=np.float64)
    out[:3] = matrix_to_axis_angle(R @ axis_angle_to_matrix(out[:3]))
    transl = R @ (np.asarray(root_rest, dtype=np.float64) + transl) - root_rest
    return out, transl


def opengl_to_opencv(pose: np.ndarray, transl: np.ndarray, root_rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A MANO fit in an OpenGL camera frame (y up, hand at -z; HO3D) -> the OpenCV frame.

    The two frames differ by ``diag(1, -1, -1)``, a proper rotation, so the fit stays a MANO hand:
    the orientation is premultiplied by it and the translation follows the wrist.
    """
    return rotate_hand(pose, transl, root_rest, GL_TO_CV)


def left_fit_to_right(
    global_orient: np.ndarray,
    finger_pose_full: np.ndarray,
    betas: np.ndarray,
    transl: np.ndarray,
    left: ManoArrays,
    right: ManoArrays,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A left-hand fit (the left model's own absolute finger pose (45), its betas and translation)
    -> labels of the right model for the x-mirrored hand: (pose (48) relative to the right
    ``hands_mean``, betas, transl).

    The pose is mirrored per joint and the betas kept; the translation puts the mirrored wrist
    where it was. Exact when the left file is the mirror of the right one. The official
    MANO_LEFT.pkl is not quite: it keeps the right file's x shape directions (smplx#48) and DexYCB
    was fitted with it, so a mirrored left hand differs from the right hand of the same betas by
    ``2 * shapedirs[:, 0] @ betas`` in x at rest (see docs/datasets.md).
    """
    full_left = np.concatenate(
        [np.asarray(global_orient, dtype=np.float64), np.asarray(finger_pose_full, dtype=np.float64)]
    )
    pose = relative_to_mean(mirror_pose(full_left), right.hands_mean)
    betas = np.asarray(betas, dtype=np.float64)
    wrist = mirror_points(left.rest_root(betas) + np.asarray(transl, dtype=np.float64))
    return pose, betas, wrist - right.rest_root(betas)
