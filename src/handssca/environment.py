"""Facts about the running environment, shown by ``handssca info``."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field


@dataclass
class Section:
    """One titled block of ``name: value`` rows."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))


def versions_section() -> Section:
    """Python, torch and numpy versions."""
    import numpy
    import torch

    from handssca import __version__

    sec = Section("versions")
    sec.add("handssca", __version__)
    sec.add("python", platform.python_version())
    sec.add("torch", torch.__version__)
    sec.add("numpy", numpy.__version__)
    return sec


def devices_section() -> Section:
    """CPU threads and any CUDA devices."""
    import torch

    sec = Section("devices")
    sec.add("cpu", f"{platform.machine()}, {torch.get_num_threads()} torch threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            sec.add(f"cuda:{i}", f"{p.name}, {p.total_memory / 2**30:.1f} GiB")
    else:
        sec.add("cuda", "not available")
    return sec


def format_sections(sections: list[Section]) -> str:
    """Render sections as an aligned plain-text report."""
    width = max((len(n) for s in sections for n, _ in s.rows), default=0)
    lines: list[str] = []
    for s in sections:
        lines.append(f"[{s.title}]")
        lines.extend(f"  {n.ljust(width)}  {v}" for n, v in s.rows)
    return "\n".join(lines)
