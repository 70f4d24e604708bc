"""Reading and writing torch files safely: ``weights_only`` loads, one-line errors naming the file,
atomic writes that keep the previous file when the disk fills."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from handssca.io.atomic import atomic_path
from handssca.messages import first_line


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` on the CPU; a missing, empty, corrupt or unsafe file
    (a pickled object other than tensors and plain containers) raises one line naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); expected a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise ValueError(
            f"{path}: not a readable {what} ({type(e).__name__}: {first_line(str(e), 'no details')})"
        ) from None


def save_torch_file(path: str | os.PathLike, payload: object) -> Path:
    """Write atomically (``atomic.atomic_path``): a crash or a full disk never leaves a half file,
    and the previous file at ``path`` is kept when writing fails (``OSError`` naming the file)."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a full disk as RuntimeError
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise OSError(f"{path}: could not write ({first_line(str(e), type(e).__name__)}){kept}") from None
    return path
