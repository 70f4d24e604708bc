"""Facts about the running environment, shown by ``handssca info``."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path


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


def scan_section() -> Section:
    """Selective-scan backends: which run here and which ``auto`` picks per device."""
    import torch

    from handssca.ops.selective_scan import ENV_VAR, auto_backend, backend_status

    sec = Section("selective scan")
    for name, why in backend_status().items():
        sec.add(name, "available" if why is None else f"unavailable: {why}")
    sec.add("auto on cpu", auto_backend(torch.device("cpu")))
    if torch.cuda.is_available():
        sec.add("auto on cuda", auto_backend(torch.device("cuda")))
    import os

    if os.environ.get(ENV_VAR):
        sec.add(ENV_VAR, os.environ[ENV_VAR])
    return sec


def hand_section(path: str | None = None) -> Section:
    """The hand model in use (the built-in default unless a MANO file is given)."""
    from handssca.hand import HandModel

    sec = Section("hand model")
    try:
        model = HandModel.load(path)
        sec.add("in use", model.describe())
    except (OSError, ValueError) as e:
        sec.add("in use", f"cannot load: {e}")
    return sec


def renderer_section() -> Section:
    """The CPU renderer used for synthetic data and overlays."""
    from handssca.render.gl import gl_available

    ok, name = gl_available()
    sec = Section("renderer")
    sec.add("in use", f"moderngl/EGL ({name})" if ok else f"numpy rasteriser (no headless GL: {name})")
    return sec


def resolve_device(name: str | None = "auto", local_rank: int = 0, key: str = "device"):
    """The torch device for ``auto`` (CUDA when there is one), ``cpu``, ``cuda`` (this process's
    ``local_rank``), ``cuda:N`` or another torch device name (``mps``, ``xpu``); one error naming
    ``key`` for a name torch does not know or CUDA asked for and absent."""
    import torch

    name = "auto" if name is None else str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"{key}: {name!r} asked for but no CUDA device is available")
        return torch.device(name) if ":" in name else torch.device("cuda", local_rank)
    try:
        return torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{key}: expected auto, cpu, cuda, cuda:N or a torch device name; got {name!r}") from None


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU has native bf16 arithmetic (x86 AVX512-BF16 or AMX, ARM bf16), from
    /proc/cpuinfo's flags; None where that cannot be told (no /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def format_sections(sections: list[Section]) -> str:
    """Render sections as an aligned plain-text report."""
    width = max((len(n) for s in sections for n, _ in s.rows), default=0)
    lines: list[str] = []
    for s in sections:
        lines.append(f"[{s.title}]")
        lines.extend(f"  {n.ljust(width)}  {v}" for n, v in s.rows)
    return "\n".join(lines)
