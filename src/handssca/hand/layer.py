"""``HandModel``: a differentiable MANO-format hand layer (official MANO files or the default hand)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handssca.frames import mirror_faces, mirror_points, mirror_pose
from handssca.hand import lbs
from handssca.hand.joint_orders import MANO_TO_FREIHAND
from handssca.hand.loader import HandModelData, HandModelFileError, load_hand_model_data
from handssca.hand.rotations import axis_angle_to_matrix

#: Fingertip vertex ids (thumb, index, middle, ring, pinky) of the 21-keypoint conventions on MANO meshes.
MANO_TIP_CONVENTIONS: dict[str, tuple[int, ...]] = {
    "manopth": (745, 317, 444, 556, 673),
    "smplx": (744, 320, 443, 554, 671),
    "freihand": (744, 320, 443, 555, 672),
    "ho3d": (744, 333, 444, 555, 672),
    "handoccnet": (728, 353, 442, 576, 694),
}
DEFAULT_HAND_FILE = "default_hand_right.npz"


def _mirror_data(d: HandModelData) -> HandModelData:
    """The exact x-mirror of a model (template, shapes, pose correctives, prior axes)."""
    m = np.array([-1.0, 1.0, 1.0])
    posedirs = d.posedirs.reshape(d.v_template.shape[0], 3, -1, 3, 3)
    # feature (R - I) of the mirrored pose is M (R - I) M: entry (r, c) changes sign when r xor c is 0
    sign = m[:, None] * m[None, :]
    posedirs = (posedirs * m[None, :, None, None, None] * sign[None, None, None]).reshape(d.posedirs.shape)
    extras = dict(d.extras)
    if "axes" in extras:  # (15, 3, 3) columns are axes; mirrored axes are proper: flip x rows, negate
        extras["axes"] = extras["axes"] * m[None, :, None] * -1.0
    if "tips" in extras:  # (5, 3) the prior's bone ends
        extras["tips"] = mirror_points(extras["tips"])
    return HandModelData(
        v_template=mirror_points(d.v_template),
        faces=mirror_faces(d.faces),
        shapedirs=d.shapedirs * m[None, :, None],
        posedirs=posedirs,
        J_regressor=d.J_regressor,
        weights=d.weights,
        parents=d.parents,
        hands_components=mirror_pose(d.hands_components),
        hands_mean=mirror_pose(d.hands_mean),
        hands_coeffs=d.hands_coeffs,
        tip_ids=d.tip_ids,
        extras=extras,
        name=d.name.replace("right", "left"),
        uv=d.uv,
        faces_uv=None if d.faces_uv is None else mirror_faces(d.faces_uv),
        texture=d.texture,
    )


class HandModel(nn.Module):
    """MANO forward pass: pose and shape -> vertices, 21 joints, 16 skeleton joints and transforms.

    Buffers follow ``.to(dtype/device)``; there are no parameters. See :meth:`forward`.
    """

    faces_tensor: torch.Tensor

    def __init__(
        self,
        data: HandModelData,
        side: str = "right",
        flat_hand_mean: bool = False,
        use_pca: bool = False,
        num_pca_comps: int = 6,
        fingertips: str | Sequence[int] = "manopth",
        num_betas: int = 10,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if side not in ("right", "left"):
            raise ValueError(f"side: expected 'right' or 'left'; got {side!r}")
        if use_pca and not 1 <= num_pca_comps <= 45:
            raise ValueError(f"num_pca_comps: expected 1..45; got {num_pca_comps}")
        if data.shapedirs.shape[2] < num_betas:
            raise ValueError(
                f"num_betas: the model has {data.shapedirs.shape[2]} shape components; asked for {num_betas}"
            )
        nv = data.v_template.shape[0]
        if isinstance(fingertips, str):
            if data.tip_ids is not None and fingertips in ("manopth", "own"):
                tips = tuple(int(i) for i in data.tip_ids)
                fingertips = "own"
            elif fingertips in MANO_TIP_CONVENTIONS:
                tips = MANO_TIP_CONVENTIONS[fingertips]
            else:
                raise ValueError(
                    f"fingertips: expected one of {sorted(MANO_TIP_CONVENTIONS)} or 5 vertex ids; got {fingertips!r}"
                )
        else:
            tips = tuple(int(i) for i in fingertips)
        if len(tips) != 5 or min(tips) < 0 or max(tips) >= nv:
            raise ValueError(f"fingertips: expected 5 vertex ids below {nv}; got {tips}")
        self.data_name = data.name
        #: sha256 of the model's arrays (:meth:`HandModelData.content_hash`): the same for the same model
        #: wherever its file lives and whatever its format
        self.content_hash = data.content_hash()
        self.side = side
        self.flat_hand_mean = flat_hand_mean
        self.use_pca = use_pca
        self.num_pca_comps = num_pca_comps if use_pca else 45
        self.fingertip_convention = fingertips if isinstance(fingertips, str) else "custom"
        self.parents = [int(p) for p in data.parents]
        self.extras = data.extras
        self.hands_coeffs = data.hands_coeffs
        #: texture mapping when the model has one (the default hand; None for MANO files): ``uv`` (U, 2)
        #: in [0, 1] with v = 0 at the bottom, ``faces_uv`` (F, 3) ids into ``uv`` parallel to ``faces``,
        #: ``texture`` (H, W, 4) uint8 albedo (row 0 at the top; alpha 255 on skin, 0 on nails)
        self.uv, self.faces_uv, self.texture = data.uv, data.faces_uv, data.texture
        f64 = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)  # noqa: E731
        # buffers are not persistent: model data (possibly licensed MANO arrays) never goes into checkpoints
        buffers = {
            "v_template": f64(data.v_template),
            "shapedirs": f64(data.shapedirs[:, :, :num_betas]),
            "posedirs": f64(data.posedirs),
            "J_regressor": f64(data.J_regressor),
            "lbs_weights": f64(data.weights),
            "hands_components": f64(data.hands_components[: self.num_pca_comps]),
            "hands_mean": f64(np.zeros(45) if flat_hand_mean else data.hands_mean),
            "full_hands_mean": f64(data.hands_mean),
            "tip_ids": torch.tensor(tips, dtype=torch.long),
            "faces_tensor": torch.as_tensor(data.faces.astype(np.int64)),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)
        self.to(dtype)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        flat_hand_mean: bool = False,
        use_pca: bool = False,
        num_pca_comps: int = 6,
        fix_left_shapedirs: bool = False,
        fingertips: str | Sequence[int] = "manopth",
        side: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> HandModel:
        """Load an official ``MANO_RIGHT.pkl``/``MANO_LEFT.pkl``, a plain-numpy pickle or an ``.npz``.

        ``side`` is inferred from the file name (LEFT/RIGHT), else from the template (wrist on +x:
        right), unless given. ``dtype`` is the buffers' dtype (float64 keeps the file's precision).
        ``fix_left_shapedirs`` negates the x component of a left model's shapedirs (the known bug of
        the official left file, smplx#48); keep it off to reproduce datasets fitted without the fix.
        """
        data = load_hand_model_data(path)
        if side is None:
            stem = Path(path).stem.lower()
            if "left" in stem or "right" in stem:
                side = "left" if "left" in stem else "right"
            else:
                side = "right" if (data.J_regressor[0] @ data.v_template)[0] >= 0 else "left"
        if fix_left_shapedirs:
            if side != "left":
                raise ValueError(f"{path}: fix_left_shapedirs applies to a left-hand model; this one is {side}")
            data.shapedirs = data.shapedirs.copy()
            data.shapedirs[:, 0, :] *= -1
        return cls(data, side, flat_hand_mean, use_pca, num_pca_comps, fingertips, dtype=dtype)

    @classmethod
    def default(cls, side: str = "right", **kwargs) -> HandModel:
        """The license-free hand shipped with the package (see docs/hand.md), right or left."""
        ref = resources.files("handssca") / "assets" / DEFAULT_HAND_FILE
        with resources.as_file(ref) as p:
            if not Path(p).is_file():
                raise HandModelFileError(f"{p}: the packaged default hand is missing; reinstall handssca")
            data = load_hand_model_data(p, name="handssca default hand (right)")
        if side == "left":
            data = _mirror_data(data)
        elif side != "right":
            raise ValueError(f"side: expected 'right' or 'left'; got {side!r}")
        kwargs.setdefault("fingertips", "own")
        return cls(data, side, **kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, side: str = "right", **kwargs) -> HandModel:
        """``from_file(path)`` when a path is given, else the default hand."""
        if path is None:
            return cls.default(side=side, **kwargs)
        return cls.from_file(path, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def faces(self) -> np.ndarray:
        """Triangles (F, 3) int64."""
        return self.faces_tensor.cpu().numpy()

    @property
    def is_default(self) -> bool:
        """Whether this is the package's license-free hand (not a MANO file)."""
        return self.data_name.startswith("handssca default hand")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def identity(self) -> dict:
        """What names this model in checkpoints, exported models and prediction files
        (:mod:`handssca.hand.identity`): ``name`` (the file's name, or the default hand's), ``sha256``
        (:attr:`content_hash`), ``side``, ``flat_hand_mean`` and ``default`` (the packaged hand)."""
        return {
            "name": self.data_name,
            "sha256": self.content_hash,
            "side": self.side,
            "flat_hand_mean": bool(self.flat_hand_mean),
            "default": self.is_default,
        }

    def describe(self) -> str:
        """One line naming the model, for logs and ``handssca info``."""
        return (
            f"{self.data_name}: {self.side} hand, {self.num_vertices} vertices, {len(self.faces)} faces, "
            f"fingertips {self.fingertip_convention} {self.tip_ids.tolist()}"
        )

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 45) absolute finger poses (``hands_mean`` included) drawn from this model's pose prior,
        redrawn where the posed mesh interpenetrates (:func:`handssca.hand.collisions.sample_plausible_poses`)."""
        from handssca.hand.collisions import sample_plausible_poses

        return sample_plausible_poses(self, n, rng)

    # ------------------------------------------------------------------ forward
    def full_pose(self, global_orient: torch.Tensor, hand_pose: torch.Tensor) -> torch.Tensor:
        """(B, 48) axis-angle actually applied: global orientation + (PCA-decoded) finger pose + mean."""
        if self.use_pca:
            if hand_pose.shape[-1] != self.num_pca_comps:
                raise ValueError(
                    f"hand_pose: expected (B, {self.num_pca_comps}) PCA coefficients; got {tuple(hand_pose.shape)}"
                )
            hand_pose = hand_pose @ self.hands_components
        elif hand_pose.shape[-1] != 45:
            raise ValueError(f"hand_pose: expected (B, 45) axis-angle; got {tuple(hand_pose.shape)}")
        return torch.cat([global_orient, hand_pose + self.hands_mean], dim=-1)

    def forward(
        self,
        global_orient: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        rotmats: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pose the hand.

        Either ``global_orient`` (B,3) with ``hand_pose`` (B,45) axis-angle or (B,num_pca_comps) PCA
        (``hands_mean`` is added unless ``flat_hand_mean``), or ``rotmats`` (B,16,3,3): the full local
        rotations of the 16 joints in MANO order, used as given (no mean, no PCA).
        ``betas`` (B,10) (zeros if None), ``transl`` (B,3) or None. Returns metres:
        ``vertices`` (B,V,3), ``joints`` (B,21,3) FreiHAND order, ``joints16`` (B,16,3) MANO order,
        ``transforms`` (B,16,4,4) world transform of each joint, ``full_pose`` (B,48) when axis-angle.
        """
        out: dict[str, torch.Tensor] = {}
        if rotmats is None:
            if global_orient is None or hand_pose is None:
                raise ValueError("pass global_orient and hand_pose, or rotmats")
            pose = self.full_pose(global_orient, hand_pose)
            out["full_pose"] = pose
            rotmats = axis_angle_to_matrix(pose.reshape(-1, 16, 3))
        elif rotmats.shape[-3:] != (16, 3, 3):
            raise ValueError(f"rotmats: expected (B, 16, 3, 3); got {tuple(rotmats.shape)}")
        batch = rotmats.shape[0]
        if betas is None:
            betas = rotmats.new_zeros(batch, self.shapedirs.shape[-1])
        elif betas.shape != (batch, self.shapedirs.shape[-1]):
            raise ValueError(f"betas: expected ({batch}, {self.shapedirs.shape[-1]}); got {tuple(betas.shape)}")
        v_shaped = self.v_template + lbs.blend_shapes(betas, self.shapedirs)
        rest_joints = torch.einsum("jv,bvc->bjc", self.J_regressor, v_shaped)
        v_posed = v_shaped + torch.einsum("bp,vcp->bvc", lbs.pose_features(rotmats), self.posedirs)
        joints16, skin = lbs.forward_kinematics(rotmats, rest_joints, self.parents)
        vertices = lbs.skin_vertices(v_posed, self.lbs_weights, skin)
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints16 = joints16 + transl[:, None]
        G = lbs.homogeneous(skin[..., :3, :3], joints16)
        tips = vertices[:, self.tip_ids]
        out.update(
            vertices=vertices,
            joints16=joints16,
            joints=torch.cat([joints16, tips], dim=1)[:, MANO_TO_FREIHAND],
            transforms=G,
            rotmats=rotmats,
        )
        return out
