"""``SyntheticHands``: occluded hands rendered on the CPU, the package's embedded default dataset.

Sample i of (split, seed) is a pure function of (seed, split, i) (and of the epoch for the training
split's augmentation and camera effects), whatever a machine has installed: without scikit-image's
photos, procedural textures stand in for the photo backgrounds and every other draw is the same
(:func:`~handssca.data.synthetic.photos.sample_background`). Hands from the hand layer with
poses from its prior and random shapes, any orientation (``max_tilt_deg=180``) or one whose palm
or back faces the camera within ``max_tilt_deg`` (at an in-plane angle within ``max_roll_deg`` of
fingers pointing sideways; 180 = any), a camera that makes the hand's box 50-85% of the crop size
(the scene is laid out on a canvas 1.5 times the crop), a skin tone (on the hand's texture when it
has one: nails keep theirs), environment-like light (key and fill lights, sky and ground ambient,
a little specular, darkening between fingers), a background (a public-domain photo bundled with
scikit-image, or a procedural texture, sometimes out of focus) under the hand's soft shadow, and 0
to ``max_occluders`` (3) occluders covering up to ~70% of the hand: a cylinder, ball or box held in
the grasp (depth-tested with the fingers), solids between the camera and the hand, or flat shapes.
The hand continues into a forearm (``forearm``: the skin's tone or a sleeve, the same lighting; it is in
every real photo). The crop (with its augmentation on the train split: scale, rotation, colour gains) is rendered
directly, then camera effects are applied (blur, noise, JPEG; ``camera_effects``). Labels follow the
common sample contract (:mod:`handssca.data.sample`). Rendering uses moderngl/EGL when it works (each
DataLoader worker makes its own context on first use) and the numpy rasteriser otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from handssca.data.synthetic.camera import CameraEffects, apply_effects, sample_effects
from handssca.data.synthetic.composition import crop_labels, darken, paint_flat, skin_data
from handssca.data.synthetic.forearm import sample_forearm
from handssca.data.synthetic.lighting import SKIN_TONES, ambient_occlusion, sample_lighting
from handssca.data.synthetic.occluders import front_object, held_object, polygon_mask, shape_polygon
from handssca.data.synthetic.photos import PhotoBank, background_layer, sample_background
from handssca.data.synthetic.views import affine3, scale_of
from handssca.data.transforms import (
    Augment,
    AugmentConfig,
    apply_affine,
    bbox_from_points,
    crop_affine,
    crop_intrinsics,
    rot_z,
    sample_augment,
    square_bbox,
)
from handssca.frames import project

SPLITS = {"train": 0, "val": 1, "test": 2}
MAX_OCCLUSION = 0.72  # occluders are added while the hand stays at least 28% visible


class SyntheticHands(Dataset):
    """Synthetic occluded right hands with full labels (see the module docstring)."""

    def __init__(
        self,
        split: str = "train",
        size: int = 1000,
        seed: int = 0,
        image_size: int = 256,
        hand_model: str | None = None,
        augment: bool | None = None,
        renderer: str = "auto",
        max_occluders: int = 3,
        max_tilt_deg: float = 180.0,
        max_roll_deg: float = 180.0,
        camera_effects: bool = True,
        forearm: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {sorted(SPLITS)}; got {split!r}")
        if not 0 <= max_tilt_deg <= 180:
            raise ValueError(f"max_tilt_deg: expected 0-180 degrees; got {max_tilt_deg}")
        if not 0 <= max_roll_deg <= 180:
            raise ValueError(f"max_roll_deg: expected 0-180 degrees; got {max_roll_deg}")
        if max_occluders < 0:
            raise ValueError(f"max_occluders: expected >= 0; got {max_occluders}")
        self.max_tilt_deg = float(max_tilt_deg)
        self.max_roll_deg = float(max_roll_deg)
        self.split, self.size, self.seed, self.image_size = split, int(size), int(seed), int(image_size)
        self.hand_model_path = hand_model
        self.augment = (split == "train") if augment is None else augment
        self.renderer_name = renderer
        self.max_occluders = max_occluders
        self.camera_effects = camera_effects
        self.forearm = bool(forearm)
        self._hand = None
        self._render = None
        self._reduce_layers = False
        self._photos: PhotoBank | None = None
        self._skin: dict | None = None
        self.epoch = 0  # augmentation of sample i depends on (seed, epoch, i): set by the trainer

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for a new epoch (the scenes stay the same)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    # lazily created per process (DataLoader workers included): hand layer, renderer, photos
    def _setup(self) -> None:
        if self._hand is None:
            from handssca.hand import HandModel

            self._hand = HandModel.load(self.hand_model_path, dtype=torch.float64)
            self._skin = skin_data(self._hand)
        if self._render is None:
            from handssca.render.gl import make_scene_renderer

            self._render = make_scene_renderer(self.renderer_name)
            # numpy samples photos itself: give it the prepared reductions (GL mipmaps the full photo)
            self._reduce_layers = getattr(self._render, "__self__", None) is None
        if self._photos is None:
            self._photos = PhotoBank()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_hand=None, _render=None, _photos=None, _skin=None)  # never ship a GL context to a worker
        return state

    @property
    def hand(self):
        self._setup()
        return self._hand

    def _orientation(self, rng: np.random.Generator) -> np.ndarray:
        """Global orientation (axis-angle, 3): uniform over all rotations when max_tilt_deg = 180,
        else palm (or back, at random) towards the camera tilted by at most max_tilt_deg, turned in
        the image plane by at most max_roll_deg from fingers pointing sideways (180 = any angle)."""
        from scipy.spatial.transform import Rotation

        seed = rng.integers(2**31)
        if self.max_tilt_deg >= 180:
            return Rotation.random(random_state=seed).as_rotvec()
        # the palm faces the hand's -y axis (MANO's layout), the camera looks along +z: turn y to -z or +z
        face = Rotation.from_euler("x", 90 if rng.random() < 0.5 else -90, degrees=True)
        axis = rng.normal(size=3)
        axis[2] = 0.0  # tilt about an axis in the image plane
        axis /= np.linalg.norm(axis) + 1e-12
        tilt = Rotation.from_rotvec(axis * np.radians(rng.uniform(0, self.max_tilt_deg)))
        angle = rng.uniform(0, 360) if self.max_roll_deg >= 180 else rng.uniform(-self.max_roll_deg, self.max_roll_deg)
        roll = Rotation.from_euler("z", angle, degrees=True)
        return (roll * tilt * face).as_rotvec()

    # ------------------------------------------------------------------------------------------ the scene
    def scene(self, index: int) -> dict:
        """Everything sample ``index`` shows, as plain data in its canvas' camera (a pure function of
        (seed, split, index)); :meth:`draw` renders a view of it."""
        self._setup()
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index)])
        hand = self._hand
        canvas = int(round(1.5 * self.image_size))
        full = hand.sample_prior(1, rng)[0]
        orient = self._orientation(rng)
        betas = np.clip(rng.normal(0, 1, 10), -2.5, 2.5)
        pose = np.concatenate([orient, full - hand.full_hands_mean.numpy()])
        with torch.no_grad():
            out = hand(
                global_orient=torch.tensor(orient)[None],
                hand_pose=torch.tensor(pose[3:])[None],
                betas=torch.tensor(betas)[None],
            )
        verts, joints = out["vertices"][0].numpy(), out["joints"][0].numpy()
        root_rest = out["joints16"][0, 0].numpy()
        f = self.image_size * rng.uniform(1.1, 1.8)
        K = np.array([[f, 0, (canvas - 1) / 2], [0, f, (canvas - 1) / 2], [0, 0, 1.0]])
        centre = verts.mean(0)
        fill = rng.uniform(0.5, 0.85) * self.image_size / canvas
        z = 0.5
        for _ in range(3):  # choose the depth so that the hand's box side is fill * canvas
            p = project(verts - centre + [0, 0, z], K)
            z *= np.ptp(p, axis=0).max() / (fill * canvas)
        p = project(verts - centre + [0, 0, z], K)
        lo, hi = p.min(0), p.max(0)
        shift_px = np.array(
            [
                rng.uniform(-lo[0], canvas - 1 - hi[0]) if hi[0] - lo[0] < canvas else 0.0,
                rng.uniform(-lo[1], canvas - 1 - hi[1]) if hi[1] - lo[1] < canvas else 0.0,
            ]
        )
        transl = np.array([shift_px[0] * z / f, shift_px[1] * z / f, z]) - centre
        verts_cam, joints_cam = verts + transl, joints + transl
        # skin: a tone (a tint of the texture's skin when there is one), small per-vertex variation
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
        variation = rng.uniform(0.93, 1.07, (len(verts), 1))
        skin = self._skin
        textured = skin["texture"] is not None
        look = dict(
            colors=np.clip(variation * (1.0 if textured else tone[None]), 0, 1.2),
            tint=tuple(tone / skin["reference"]) if textured else (1.0, 1.0, 1.0),
            ao=ambient_occlusion(verts_cam, joints_cam, skin["vertex_finger"])
            if skin["vertex_finger"] is not None
            else None,
            wrap=float(rng.uniform(0.2, 0.5)),
            specular=float(rng.uniform(0.02, 0.12)),
            shininess=float(rng.uniform(8, 30)),
        )
        lighting = sample_lighting(rng)
        background = sample_background(rng, self._photos, canvas)
        key = np.asarray(lighting.lights[0][0], dtype=np.float64)
        hand_px = max(np.ptp(project(verts_cam, K), axis=0).max(), 1.0)
        shadow = dict(
            strength=float(rng.uniform(0.15, 0.55)),
            offset=key[:2] / max(abs(key[2]), 0.3) * hand_px * rng.uniform(0.03, 0.12),
            blur=hand_px * rng.uniform(0.03, 0.1),
        )
        # occluders: at most one held object, solids in front, flat shapes (sized at draw time)
        held, front, flats = [], [], []
        n_occ = int(rng.integers(0, self.max_occluders + 1))
        target_ratio = rng.uniform(0.05, 0.7)
        hand_size = float(np.ptp(verts_cam, axis=0).max())
        for _ in range(n_occ):
            kind = rng.choice(3, p=[0.35, 0.2, 0.45])
            if kind == 0 and not held:
                held.append(held_object(rng, joints_cam))
            elif kind == 1:
                front.append(front_object(rng, verts_cam[rng.integers(len(verts_cam))], hand_size))
            else:
                trials = []
                for _ in range(6):
                    vid = int(rng.integers(len(verts_cam)))
                    scale = math.sqrt(target_ratio / n_occ / math.pi) * rng.uniform(0.8, 1.6)
                    trials.append((vid, scale, shape_polygon(rng, np.zeros(2), 1.0)))
                if rng.random() < 0.5:
                    texture, colour = sample_background(rng, self._photos, canvas, blur_prob=0.0), None
                else:
                    texture, colour = None, rng.uniform(0, 1, 3)
                shade = (float(rng.uniform(0.7, 1.0)), float(rng.uniform(0.9, 1.2)))
                flats.append(dict(trials=trials, texture=texture, colour=colour, shade=shade))
        return dict(
            index=int(index),
            canvas=canvas,
            K=K,
            pose=pose,
            betas=betas,
            transl=transl,
            root_rest=root_rest,
            vertices_cam=verts_cam,
            joints_cam=joints_cam,
            look=look,
            lighting=lighting,
            background=background,
            shadow=shadow,
            held=held,
            front=front,
            flats=flats,
            flat_shadow=dict(strength=float(rng.uniform(0.2, 0.5)), offset=shadow["offset"], blur=shadow["blur"]),
            # drawn last so that every draw above is as it was before forearms
            forearm=sample_forearm(rng, verts_cam, joints_cam, tone, look) if self.forearm else None,
        )

    # ------------------------------------------------------------------------------------------ a view of it
    def draw(self, s: dict, M: np.ndarray, rot: float, size: int, effects: CameraEffects | None) -> dict:
        """Render the view of scene ``s`` through the crop map M (2x3, canvas -> view pixels; the scene
        turned by ``rot`` about the optical axis) at ``size`` pixels: image (size, size, 3) float32,
        mask_full, mask_visible (size, size) bool, occlusion."""
        from handssca.render.raster import Lighting, MeshPart

        skin = self._skin
        R = rot_z(rot)
        K = crop_intrinsics(s["K"], M, rot)
        A = affine3(M)
        scale = scale_of(A)
        view_to_canvas = np.linalg.inv(A)
        light = s["lighting"]
        lighting = Lighting(
            [(np.asarray(d) @ R.T, c) for d, c in light.lights],
            light.sky,
            light.ground,
            tuple(np.asarray(light.up) @ R.T),
        )
        hand_part = MeshPart(
            s["vertices_cam"] @ R.T,
            skin["faces"],
            uv=skin["uv"],
            faces_uv=skin["faces_uv"],
            texture=skin["texture"],
            hand=True,
            **s["look"],
        )
        parts = [hand_part]
        if s.get("forearm") is not None:
            v, faces, colours = s["forearm"].mesh()
            arm = s["forearm"]
            parts.append(
                MeshPart(
                    v @ R.T, faces, colours, wrap=s["look"]["wrap"], specular=arm.specular, shininess=arm.shininess
                )
            )
        scenery = len(parts)  # the hand and its arm; occluders after them
        for obj in s["held"] + s["front"]:
            v, faces, colours = obj.mesh()
            parts.append(MeshPart(v @ R.T, faces, colours, specular=obj.specular, shininess=obj.shininess))
        layer = background_layer(
            s["background"], self._photos, view_to_canvas, s["canvas"], reduced=self._reduce_layers
        )
        rend = self._render(parts, K, (size, size), lighting, layer)
        full = rend.hand_full
        area = max(int(full.sum()), 1)
        if len(parts) > scenery and 1 - rend.hand_visible.sum() / area > MAX_OCCLUSION:
            rend = self._render(parts[:scenery], K, (size, size), lighting, layer)  # the solids hid too much: none
        image = rend.rgb
        darken(image, rend.coverage, s["shadow"], M, scale, keep=rend.coverage)  # the shadow falls behind
        occ = np.zeros_like(full)
        verts_px = apply_affine(project(s["vertices_cam"], s["K"]), M)
        for flat in s["flats"]:
            for vid, radius, unit in flat["trials"]:
                poly = unit * radius * math.sqrt(area) + verts_px[vid]
                shape = polygon_mask(poly, size)
                trial = occ | shape
                # the flats and the solids together keep the hand at least 1 - MAX_OCCLUSION visible
                if 1 - (rend.hand_visible & ~trial).sum() / area <= MAX_OCCLUSION:
                    occ = trial
                    darken(image, shape, s["flat_shadow"], M, scale)
                    paint_flat(image, shape, flat, self._photos, view_to_canvas, s["canvas"])
                    break
        visible = rend.hand_visible & ~occ
        if effects is not None:
            image = apply_effects(image, effects)
        return {"image": image, "mask_full": full, "mask_visible": visible, "occlusion": 1.0 - visible.sum() / area}

    def _effects(self, index: int) -> CameraEffects | None:
        if not self.camera_effects:
            return None
        epoch = self.epoch if self.augment else 0
        return sample_effects(np.random.default_rng([self.seed, SPLITS[self.split], int(index), 2, epoch]))

    def render_original(self, index: int) -> dict[str, np.ndarray]:
        """The whole canvas of sample ``index`` (no augmentation) and its labels in the canvas' camera."""
        s = self.scene(index)
        view = self.draw(s, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 0.0, s["canvas"], self._effects(index))
        keys = ("K", "joints_cam", "vertices_cam", "pose", "betas", "transl", "root_rest")
        return {**{k: s[k] for k in keys}, **view}

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < self.size:
            raise IndexError(f"sample {index} out of range for {self.size} samples")
        s = self.scene(index)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index), 1, self.epoch])
        joints_px = project(s["joints_cam"], s["K"])
        bbox = square_bbox(bbox_from_points(joints_px, 1.5))
        aug = sample_augment(rng, AugmentConfig()) if self.augment else Augment()
        M = crop_affine(bbox, self.image_size, aug.scale, aug.rot)
        view = self.draw(s, M, aug.rot, self.image_size, None)
        image = view["image"] * np.asarray(aug.color, dtype=np.float32)
        np.clip(image, 0, 1, out=image)
        effects = self._effects(index)
        if effects is not None:
            image = apply_effects(image, effects)
        sample = crop_labels(s, M, aug.rot, self.image_size, bbox, joints_px)
        sample["image"] = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        sample["mask_full"], sample["mask_visible"] = view["mask_full"], view["mask_visible"]
        sample["occlusion"] = np.float32(view["occlusion"])
        return sample
