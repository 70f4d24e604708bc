"""Which hand model a network was trained with, and loading that model again.

A network regresses MANO-format pose and shape parameters for one hand model: the same numbers drive
another model to a different mesh. Checkpoints and exported models therefore record the model's
*identity* (:meth:`HandModel.identity`): ``name`` (the file's name, or the default hand's), ``sha256``
(the content hash of its arrays, :meth:`HandModelData.content_hash`, independent of where the file
lives), ``side``, ``flat_hand_mean`` and ``default`` (the license-free hand shipped with handssca).

:func:`load_identified` loads the model an identity names: the packaged default hand for a default-hand
network, else the MANO file the user gives (``--hand-model``) or the one at the path recorded at
training, whose hash must match. A MANO-trained network without its file is an error, never the default
hand. An identity with ``sha256`` None comes from a checkpoint written before identities were recorded:
the file cannot be checked, so the one given is used with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from handssca.hand.layer import HandModel

log = logging.getLogger("handssca.hand")

#: The keys of an identity and the types of their values (``sha256``: a 64-digit hex string, or None
#: when unknown).
IDENTITY_KEYS = ("name", "sha256", "side", "flat_hand_mean", "default")


def check_identity(obj: object, where: str) -> dict:
    """A recorded identity, checked: a dict with :data:`IDENTITY_KEYS` (extra keys are dropped).
    ValueError naming ``where`` (the file and key it was read from) and the key at fault."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict with keys {list(IDENTITY_KEYS)}; found {type(obj).__name__}")
    missing = [k for k in IDENTITY_KEYS if k not in obj]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}; expected {list(IDENTITY_KEYS)}")
    out = {k: obj[k] for k in IDENTITY_KEYS}
    sha = out["sha256"]
    if not isinstance(out["name"], str) or not out["name"]:
        raise ValueError(f"{where}: key 'name': expected the hand model's name; found {out['name']!r}")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise ValueError(f"{where}: key 'sha256': expected 64 hex digits or null; found {sha!r}")
    if out["side"] not in ("right", "left"):
        raise ValueError(f"{where}: key 'side': expected 'right' or 'left'; found {out['side']!r}")
    for key in ("flat_hand_mean", "default"):
        if not isinstance(out[key], bool):
            raise ValueError(f"{where}: key {key!r}: expected true or false; found {out[key]!r}")
    return out


def describe_identity(identity: dict) -> str:
    """One phrase for messages: ``the hand model MANO_RIGHT.pkl (sha256 0123456789ab...)``, ``the default
    hand (sha256 ...)``."""
    sha = identity.get("sha256")
    what = "the default hand" if identity.get("default") else f"the hand model {identity['name']}"
    return f"{what} (sha256 {sha[:12]}...)" if sha else f"{what} (no content hash recorded)"


def load_identified(
    identity: dict,
    given: str | os.PathLike | None = None,
    recorded_path: str | os.PathLike | None = None,
    where: str = "the network",
) -> tuple[HandModel, str | None]:
    """The :class:`HandModel` that ``identity`` names, and the file it came from (None: the packaged
    default hand).

    ``given``: a file passed by the user (``--hand-model``); it is used only when its content hash is
    the identity's. Without it: the default hand for a default-hand identity, else the file at
    ``recorded_path`` (where the model was at training) when it is there and its hash matches. The
    model is built with the identity's side and flat-hand mean. An identity without a hash (an old
    checkpoint) accepts the file given, else the one at ``recorded_path``, with a warning.

    ValueError, one line naming ``where`` (the checkpoint or exported model), when the file is missing
    (naming ``--hand-model``) or is another model (naming both)."""
    sha = identity["sha256"]
    options = {"flat_hand_mean": bool(identity.get("flat_hand_mean", False))}
    side = identity.get("side")  # None: an old checkpoint's MANO file, whose side the file tells
    trained = describe_identity(identity)

    def verified(hand: HandModel, path: str, how: str) -> HandModel:
        if sha is None:
            log.warning(
                "%s: recorded no content hash of its hand model (written by an older handssca); using %s %s "
                "unverified: it must be the file the network was trained with",
                where,
                how,
                path,
            )
        elif hand.content_hash != sha:
            raise ValueError(
                f"{where} was trained with {trained}, but {how} {path} holds another hand model ({hand.data_name}, "
                f"sha256 {hand.content_hash[:12]}...): pass the file it was trained with as --hand-model"
            )
        return hand

    if given is not None:
        hand = HandModel.from_file(given, side=side, **options)
        return verified(hand, str(given), "--hand-model"), str(given)
    if identity["default"]:
        hand = HandModel.default(side=side or "right", **options)
        if sha is not None and hand.content_hash != sha:
            raise ValueError(
                f"{where} was trained with a default hand (sha256 {sha[:12]}...) that is not this handssca's "
                f"(sha256 {hand.content_hash[:12]}...); pass the hand file it was trained with as --hand-model"
            )
        return hand, None
    if recorded_path and Path(recorded_path).is_file():
        hand = HandModel.from_file(recorded_path, side=side, **options)
        return verified(hand, str(recorded_path), "the file at its recorded path"), str(recorded_path)
    at = f", which is not at its recorded path {recorded_path}" if recorded_path else ""
    raise ValueError(
        f"{where} was trained with {trained}{at}: pass that file as --hand-model PATH "
        "(another hand model, the default one included, would turn the network's parameters into a wrong mesh)"
    )
