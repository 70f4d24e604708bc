"""Matplotlib figures of results: PCK curves, learning curves, best and worst samples. Functions
return figures; :func:`save_figure` writes one (no display needed)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from handssca.pictures.draw import draw_joints


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pck_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = ""):
    """PCK curves {name: (thresholds_mm, pck)} with their AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    for name, (th, pck) in curves.items():
        auc = np.trapezoid(pck, th) / (th[-1] - th[0])
        ax.plot(th, pck, label=f"{name} (AUC {auc:.3f})")
    ax.set_xlabel("threshold (mm)")
    ax.set_ylabel("fraction of points within threshold (PCK)")
    ax.set_ylim(0, 1.01)
    ax.set_xlim(0, max(th[-1] for th, _ in curves.values()))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def learning_curve(train_log: Path, history: list[dict]):
    """Training loss per step (``train_log.csv``) and validation errors per epoch (with the mean-pose level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = [], []
    if train_log.is_file():
        with open(train_log) as f:
            for row in csv.DictReader(f):
                steps.append(int(row["step"]))
                losses.append(float(row["total"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    if losses:
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        axes[0].plot(steps, losses, color="0.75", lw=0.8, label="per step")
        axes[0].plot(steps[k - 1 :], smooth, color="C0", label=f"mean of {k} steps")
        axes[0].set_yscale("log")
        axes[0].legend()
    axes[0].set_xlabel("optimiser step")
    axes[0].set_ylabel("training loss (weighted sum)")
    axes[0].set_title("training loss")
    for key, color, label in (("mpjpe_rr_mm", "C1", "root-relative MPJPE"), ("pa_mpjpe_mm", "C2", "PA-MPJPE")):
        xs = [h["step"] for h in history if key in h]
        ys = [h[key] for h in history if key in h]
        if ys:
            axes[1].plot(xs, ys, "o-", color=color, label=f"model, {label}")
        base = next((h[f"{key}_meanpose"] for h in history if f"{key}_meanpose" in h), None)
        if base is not None:
            axes[1].axhline(base, color=color, ls="--", lw=1, label=f"mean-pose predictor, {label}")
    axes[1].set_xlabel("optimiser step")
    axes[1].set_ylabel("error on validation images (mm)")
    axes[1].set_title("validation error")
    axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def best_worst(dataset, preds, errors: np.ndarray, faces: np.ndarray, k: int = 4):
    """A grid of the k best and k worst samples: input with predicted mesh and 2D joints drawn on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from handssca.frames import joints_img_to_pixels
    from handssca.geometry import place_in_crop
    from handssca.render.gl import make_renderer
    from handssca.render.overlay import overlay_mesh

    render = make_renderer("auto")
    order = np.argsort(errors)
    picks = [("best", i) for i in order[:k]] + [("worst", i) for i in order[::-1][:k]]
    fig, axes = plt.subplots(2, k, figsize=(3 * k, 6.6), dpi=100)
    for ax, (tag, i) in zip(np.ravel(axes), picks):
        sample = dataset[int(preds.gt["index"][i])] if "index" in preds.gt else dataset[int(i)]
        img = sample["image"].transpose(1, 2, 0)
        size = img.shape[0]
        K = np.asarray(sample["K"], dtype=np.float64)
        uv = joints_img_to_pixels(preds.pred["joints_img"][i], size)
        t, _ = place_in_crop(preds.pred["joints"][i], preds.pred["joints_img"][i], K, size)
        shown = overlay_mesh(img, preds.pred["vertices"][i] + t, faces, K, render, alpha=0.6)
        shown = draw_joints(shown, uv, color=(230, 30, 30))
        ax.imshow(shown)
        ax.set_title(f"{tag}: {errors[i]:.1f} mm PA-MPJPE", fontsize=9)
        ax.axis("off")
    return fig
