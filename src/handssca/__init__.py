"""handssca: 3D hand mesh reconstruction from one RGB image with the HandSSCA network.

Importing the package does no work: no file loading, no kernel compilation, no GL context; the
entry points below import their modules on first use.

    handssca.build_model(config)                       a freshly initialised network (ModelConfig or dict)
    handssca.load_model(path, hand_model=None)         the network stored in a checkpoint
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "load_model"]


def build_model(config=None, hand_model=None):
    """A freshly initialised :class:`~handssca.model.handssca.HandSSCA` from a ``ModelConfig`` or its dict."""
    from handssca.model.handssca import build_model as _build

    return _build(config, hand_model)


def load_model(path, hand_model=None, map_location="cpu"):
    """The network stored in a handssca checkpoint (eval mode), with the hand model it was trained with.
    ``hand_model``: that model's MANO file, checked against the checkpoint's record; None: the default
    hand for a default-hand checkpoint, else the file at its recorded path (an error when it is not there)."""
    from handssca.model.checkpoint import load_model as _load

    return _load(path, hand_model, map_location)
