"""Low-level operators: the selective scan."""

from handssca.ops.selective_scan import BackendUnavailable, backend_status, selective_scan

__all__ = ["BackendUnavailable", "backend_status", "selective_scan"]
