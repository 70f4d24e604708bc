"""Peak-memory measurement shared by the benchmark scripts (Linux /proc; NaN elsewhere)."""

from __future__ import annotations

from collections.abc import Callable


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def extra_memory_gib(fn: Callable[[], object]) -> float:
    """Peak resident memory above the level before ``fn`` (Linux: resets VmHWM via clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return float("nan")
    before = _rss_kib("VmRSS:")
    fn()
    return (_rss_kib("VmHWM:") - before) / 2**20
