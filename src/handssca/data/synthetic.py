"""``SyntheticHands``: occluded hands rendered on the CPU, the package's embedded default dataset.

Sample i of (split, seed) is a pure function of (seed, split, i): hands from the hand layer with
poses from its prior and random shapes, any orientation (``max_tilt_deg=180``) or one whose palm
or back faces the camera within ``max_tilt_deg`` (at an in-plane angle within ``max_roll_deg`` of
fingers pointing sideways; 180 = any), a camera that makes the
hand's box 50-85% of the crop size (on a canvas 1.5 times the crop, so that the crop rarely leaves
the rendered image), a random skin tone and light, a background (a public-domain photo bundled
with scikit-image, or a procedural texture) and 0 to ``max_occluders`` (3) occluders in front of
the hand covering up to ~70% of it, balanced.
Rendering uses moderngl/EGL when it works (each DataLoader worker makes its own context on first
use) and the numpy rasteriser otherwise. The image then goes through the common crop pipeline.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from torch.utils.data import Dataset

from handssca.data.sample import make_sample
from handssca.data.transforms import Augment, AugmentConfig, bbox_from_points, sample_augment, square_bbox
from handssca.frames import project

log = logging.getLogger("handssca.data")

SPLITS = {"train": 0, "val": 1, "test": 2}
SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.90, 0.70, 0.58],
        [0.80, 0.60, 0.47],
        [0.66, 0.46, 0.33],
        [0.50, 0.34, 0.23],
        [0.34, 0.22, 0.15],
    ]
)
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "motorcycle_left",
    "brick",
    "grass",
    "gravel",
    "camera",
)


def _load_photos() -> list[np.ndarray]:
    """The public-domain photos bundled in scikit-image's wheel, as float RGB; [] without scikit-image."""
    try:
        from skimage import data as skdata
    except Exception:
        log.warning("scikit-image is not installed: synthetic backgrounds use procedural textures only")
        return []
    photos = []
    for name in PHOTOS:
        try:
            im = getattr(skdata, name)() if name != "motorcycle_left" else skdata.stereo_motorcycle()[0]
        except Exception:
            continue
        im = np.asarray(im, dtype=np.float32) / 255.0
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        photos.append(im[..., :3])
    return photos


def _resize(im: np.ndarray, size: int) -> np.ndarray:
    from scipy import ndimage

    zoom = (size / im.shape[0], size / im.shape[1], 1)
    return np.clip(ndimage.zoom(im, zoom, order=1), 0, 1)[:size, :size]


def procedural_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random smooth noise / stripes / checker texture (size, size, 3) in [0, 1]."""
    kind = rng.integers(3)
    c1, c2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        t = np.zeros((size, size))
        for octave in range(1, 5):
            g = rng.normal(size=(2**octave + 1, 2**octave + 1))
            t += _resize(np.repeat(g[..., None], 1, 2) * 0.5 + 0.5, size)[..., 0] / octave
        t = (t - t.min()) / (np.ptp(t) + 1e-9)
    elif kind == 1:
        ang, freq = rng.uniform(0, np.pi), rng.uniform(3, 20)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(ang) * xx + np.sin(ang) * yy))
    else:
        n = rng.integers(3, 12)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(float)
    img = c1 * t[..., None] + c2 * (1 - t[..., None])
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1).astype(np.float32)


def _shape_mask(rng: np.random.Generator, size: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """A filled ellipse, rotated rectangle or random convex polygon (size, size) bool."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    px, py = xx - centre[0], yy - centre[1]
    kind = rng.integers(3)
    ang = rng.uniform(0, np.pi)
    c, s = np.cos(ang), np.sin(ang)
    u, v = c * px + s * py, -s * px + c * py
    aspect = rng.uniform(0.4, 1.0)
    if kind == 0:
        return (u / radius) ** 2 + (v / (radius * aspect)) ** 2 <= 1
    if kind == 1:
        return (np.abs(u) <= radius) & (np.abs(v) <= radius * aspect)
    k = rng.integers(5, 9)
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    pts = np.stack([np.cos(angles), np.sin(angles) * aspect], 1) * radius
    inside = np.ones_like(u, dtype=bool)
    for i in range(k):
        a, b = pts[i], pts[(i + 1) % k]
        inside &= (b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0]) >= 0
    return inside


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
        self._hand = None
        self._render = None
        self._photos: list[np.ndarray] | None = None
        self.epoch = 0  # augmentation of sample i depends on (seed, epoch, i): set by the trainer

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations for a new epoch (the rendered scenes stay the same)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    # lazily created per process (DataLoader workers included): hand layer, renderer, photos
    def _setup(self) -> None:
        if self._hand is None:
            from handssca.hand import HandModel

            self._hand = HandModel.load(self.hand_model_path, dtype=torch.float64)
        if self._render is None:
            from handssca.render.gl import make_renderer

            self._render = make_renderer(self.renderer_name)
        if self._photos is None:
            self._photos = _load_photos()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_hand=None, _render=None, _photos=None)  # never ship a GL context to a worker
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
        # the default hand's palm normal is its +y axis, the camera looks along +z: turn y to -z or +z
        face = Rotation.from_euler("x", 90 if rng.random() < 0.5 else -90, degrees=True)
        axis = rng.normal(size=3)
        axis[2] = 0.0  # tilt about an axis in the image plane
        axis /= np.linalg.norm(axis) + 1e-12
        tilt = Rotation.from_rotvec(axis * np.radians(rng.uniform(0, self.max_tilt_deg)))
        angle = rng.uniform(0, 360) if self.max_roll_deg >= 180 else rng.uniform(-self.max_roll_deg, self.max_roll_deg)
        roll = Rotation.from_euler("z", angle, degrees=True)
        return (roll * tilt * face).as_rotvec()

    def _background(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self._photos and rng.random() < 0.6:
            photo = self._photos[rng.integers(len(self._photos))]
            h, w = photo.shape[:2]
            side = int(rng.uniform(0.3, 1.0) * min(h, w))
            y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            img = _resize(photo[y0 : y0 + side, x0 : x0 + side], size)
            if rng.random() < 0.5:
                img = img[:, ::-1]
            return np.ascontiguousarray(img * rng.uniform(0.6, 1.2, 3)).clip(0, 1).astype(np.float32)
        return procedural_texture(rng, size)

    def render_original(self, index: int) -> dict[str, np.ndarray]:
        """The full rendered image and labels of sample ``index`` before cropping."""
        self._setup()
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index)])
        hand = self._hand
        size = int(round(1.5 * self.image_size))  # a canvas larger than the crop: few black borders after cropping
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
        K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1.0]])
        centre = verts.mean(0)
        fill = rng.uniform(0.5, 0.85) * self.image_size / size
        z = 0.5
        for _ in range(3):  # choose the depth so that the hand's box side is fill * size
            p = project(verts - centre + [0, 0, z], K)
            extent = np.ptp(p, axis=0).max()
            z *= extent / (fill * size)
        p = project(verts - centre + [0, 0, z], K)
        lo, hi = p.min(0), p.max(0)
        shift_px = np.array(
            [
                rng.uniform(-lo[0], size - 1 - hi[0]) if hi[0] - lo[0] < size else 0.0,
                rng.uniform(-lo[1], size - 1 - hi[1]) if hi[1] - lo[1] < size else 0.0,
            ]
        )
        target = np.array([shift_px[0] * z / f, shift_px[1] * z / f, z])
        transl = target - centre
        verts_cam, joints_cam = verts + transl, joints + transl
        tone = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.1, 3)
        colors = np.clip(tone[None] * rng.uniform(0.93, 1.07, (len(verts), 1)), 0, 1)
        light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.7, 0.7), 1.0])
        rend = self._render(
            verts_cam,
            hand.faces,
            K,
            (size, size),
            color=colors,
            light_dir=tuple(light),
            ambient=float(rng.uniform(0.25, 0.55)),
        )
        image = self._background(rng, size)
        full_mask = rend.mask
        image[full_mask] = rend.rgb[full_mask]
        occ_mask = np.zeros_like(full_mask)
        n_occ = int(rng.integers(0, self.max_occluders + 1))
        area = max(int(full_mask.sum()), 1)
        if n_occ:
            target_ratio = rng.uniform(0.05, 0.7)
            ys, xs = np.nonzero(full_mask)
            for _ in range(n_occ):
                share = target_ratio / n_occ
                for _ in range(6):
                    j = rng.integers(len(xs)) if len(xs) else 0
                    centre_px = np.array([xs[j], ys[j]], dtype=float) if len(xs) else np.array([size / 2, size / 2])
                    radius = math.sqrt(share * area / math.pi) * rng.uniform(0.8, 1.6)
                    shape = _shape_mask(rng, size, centre_px, radius)
                    trial = occ_mask | shape
                    if (trial & full_mask).sum() / area <= 0.72:
                        occ_mask = trial
                        tex = (
                            self._background(rng, size)
                            if rng.random() < 0.5
                            else np.broadcast_to(rng.uniform(0, 1, 3), (size, size, 3)).astype(np.float32)
                        )
                        shade = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.9, 1.2), size)[None, :, None]
                        image[shape] = np.clip(tex * shade, 0, 1)[shape]
                        break
        visible = full_mask & ~occ_mask
        return {
            "image": image,
            "K": K,
            "joints_cam": joints_cam,
            "vertices_cam": verts_cam,
            "pose": pose,
            "betas": betas,
            "transl": transl,
            "root_rest": root_rest,
            "mask_full": full_mask,
            "mask_visible": visible,
            "occlusion": 1.0 - visible.sum() / area,
        }

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < self.size:
            raise IndexError(f"sample {index} out of range for {self.size} samples")
        o = self.render_original(index)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index), 1, self.epoch])
        joints_px = project(o["joints_cam"], o["K"])
        bbox = square_bbox(bbox_from_points(joints_px, 1.5))
        aug = sample_augment(rng, AugmentConfig()) if self.augment else None
        sample = make_sample(
            o["image"],
            bbox,
            self.image_size,
            aug if aug is not None else Augment(),
            K=o["K"],
            joints_img_px=joints_px,
            joints_cam=o["joints_cam"],
            vertices_cam=o["vertices_cam"],
            pose=o["pose"],
            betas=o["betas"],
            transl=o["transl"],
            root_rest=o["root_rest"],
            num_vertices=len(o["vertices_cam"]),
            index=index,
            extra_images={"mask_full": o["mask_full"], "mask_visible": o["mask_visible"]},
        )
        sample["occlusion"] = np.float32(o["occlusion"])
        return sample
