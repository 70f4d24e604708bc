"""Pictures of evaluation results (matplotlib, no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_pck(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = "") -> Path:
    """Draw PCK curves {name: (thresholds_mm, pck)} with their AUC in the legend; write a PNG."""
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
    return save_figure(fig, path)
