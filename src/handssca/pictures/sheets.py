"""Contact sheets: the hand model and its prior (``handssca hand show``), dataset samples
(``handssca data preview``). Functions return matplotlib figures; callers save them."""

from __future__ import annotations

import copy

import numpy as np
import torch

from handssca.frames import joints_img_to_pixels
from handssca.pictures.draw import draw_joints, orbit_view
from handssca.render import render_mesh


def skin_kwargs(model) -> dict:
    """``render_mesh`` arguments that draw ``model`` with its own texture (the default hand), else plain skin."""
    if getattr(model, "texture", None) is None:
        return {}
    return {"uv": model.uv, "faces_uv": model.faces_uv, "texture": model.texture, "color": (1.0, 1.0, 1.0)}


def hand_sheet(model, samples: int = 4, seed: int = 0, size: int = 256):
    """A figure of the template from three sides and ``samples`` poses from the model's prior (save it with
    :func:`~handssca.pictures.figures.save_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = copy.deepcopy(model).to(torch.float64)  # nn.Module.to works in place: keep the caller's
    faces = model.faces
    skin = skin_kwargs(model)
    zeros = torch.zeros(1, 45, dtype=torch.float64)
    rest = model(global_orient=torch.zeros(1, 3, dtype=torch.float64), hand_pose=zeros - model.hands_mean)
    panels = []
    v = rest["vertices"][0].numpy()
    # MANO layout (palm toward -y, fingers along -x, thumb +z) -> camera (palm toward the camera, fingers up)
    to_cam = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
    for title, yaw, pitch in (("template, palm", 0, 0), ("template, back", 180, 0), ("template, side", 90, 0)):
        vc, K = orbit_view(v @ to_cam.T, yaw, pitch, size)
        panels.append((title, render_mesh(vc, faces, K, (size, size), **skin).rgb))
    poses = model.sample_prior(samples, np.random.default_rng(seed))
    for k in range(samples):
        hp = torch.tensor(poses[k : k + 1]) - model.hands_mean
        out = model(global_orient=torch.zeros(1, 3, dtype=torch.float64), hand_pose=hp)
        vc, K = orbit_view(out["vertices"][0].numpy() @ to_cam.T, (-35, 35, 145, 215)[k % 4], -15, size)
        panels.append((f"prior sample {k + 1}", render_mesh(vc, faces, K, (size, size), **skin).rgb))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), dpi=100)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (title, img) in zip(np.ravel(axes), panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
    fig.suptitle(model.describe(), fontsize=8)
    return fig


def prior_sheet(
    model,
    samples: int = 24,
    seed: int = 0,
    size: int = 160,
    poses: np.ndarray | None = None,
    cols: int = 4,
    title: str | None = None,
):
    """A figure of ``samples`` poses from the model's prior, each seen from the palm (three-quarter view) and
    from the thumb's side, titled with its interpenetration (:mod:`handssca.hand.collisions`). ``poses``
    (n, 45) absolute axis-angle poses are shown instead of drawing them (e.g. unchecked draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from handssca.hand.collisions import HandCollider, sample_plausible_poses
    from handssca.hand.rotations import axis_angle_to_matrix

    model = copy.deepcopy(model).to(torch.float64)  # nn.Module.to works in place: keep the caller's
    if poses is None:
        poses = sample_plausible_poses(model, samples, np.random.default_rng(seed))
    poses = np.asarray(poses, dtype=np.float64)[:samples]
    skin = skin_kwargs(model)
    collider = HandCollider.from_model(model)
    depth_mm = 1000 * collider.penetration(axis_angle_to_matrix(torch.as_tensor(poses).reshape(-1, 15, 3)).numpy())
    to_cam = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])  # MANO layout -> palm toward the camera, fingers up
    if model.side == "left":
        to_cam = to_cam @ np.diag([-1.0, 1, 1])
    hp = torch.as_tensor(poses) - model.hands_mean
    out = model(global_orient=torch.zeros(len(poses), 3, dtype=torch.float64), hand_pose=hp)
    rows = -(-len(poses) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 1.35 * rows), dpi=110, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k in range(len(poses)):
        v = out["vertices"][k].numpy() @ to_cam.T
        views = []
        for yaw, pitch in ((-30, -20), (-95, 0)):
            vc, K = orbit_view(v, yaw, pitch, size, fill=0.85)
            views.append(render_mesh(vc, model.faces, K, (size, size), **skin).rgb)
        ax = axes.ravel()[k]
        ax.imshow(np.concatenate(views, 1))
        ax.set_title(f"{k + 1}: penetration {depth_mm[k]:.1f} mm", fontsize=6)
    fig.suptitle(title or f"pose prior samples: {model.describe()}", fontsize=7)
    fig.tight_layout()
    return fig


def sample_grid(dataset, count: int = 12, cols: int = 4, faces: np.ndarray | None = None, title: str = ""):
    """A figure: a grid of dataset samples with their 2D joints and, where vertices are known, the mesh
    outline (save it with :func:`~handssca.pictures.figures.save_figure`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import ndimage

    from handssca.render.gl import make_renderer

    render = make_renderer("auto") if faces is not None else None
    n = min(count, len(dataset))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        s = dataset[i]
        img = s["image"].transpose(1, 2, 0)
        size = img.shape[0]
        shown = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        if render is not None and s.get("valid_vertices", 0) and s["vertices_cam"].shape[0] > faces.max():
            mask = render(s["vertices_cam"].astype(np.float64), faces, s["K"].astype(np.float64), (size, size)).mask
            edge = mask & ~ndimage.binary_erosion(mask, iterations=1)
            shown = shown.copy()
            shown[edge] = (255, 230, 0)
        if s.get("valid_joints_img", 1):
            shown = draw_joints(shown, joints_img_to_pixels(s["joints_img"], size), color=(230, 30, 30), radius=2)
        ax = axes.ravel()[i]
        ax.imshow(shown)
        label = f"#{s['index']}"
        if "occlusion" in s:
            label += f", occluded {float(s['occlusion']) * 100:.0f}%"
        if s.get("hand_side") == "left":
            label += ", left (mirrored)"
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
