"""The selective scan (mamba's S6 recurrence) behind one interface, with several backends."""

from handssca.ops.selective_scan.interface import (
    BACKENDS,
    ENV_VAR,
    BackendUnavailable,
    auto_backend,
    backend_status,
    resolve_backend,
    selective_scan,
)

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "BackendUnavailable",
    "auto_backend",
    "backend_status",
    "resolve_backend",
    "selective_scan",
]
