"""glibc's malloc set up for a PyTorch process that allocates the same large tensors at every step.

With glibc's defaults every block over 32 MiB is a fresh ``mmap``: its pages fault in on first touch and go
back to the kernel when freed, so a training step pays the page faults of all its large activations again
(measured: 40% of a CPU training step in the kernel, issue #27). Here freed memory stays in the process
instead: no ``mmap`` for large blocks, and the heap's free top kept (so a process holds its peak, as with
any allocator that reuses memory, and no more).

- The ``handssca`` command starts itself again once with ``GLIBC_TUNABLES`` set (:func:`reexec_with_tunables`:
  the heap's top kept up to 16 GiB; child processes, DataLoader workers included, inherit it).
- ``engine.trainer.train`` and every DataLoader worker call :func:`tune_malloc` (``mallopt``: the same, with
  the kept top capped at 2 GiB, the most ``mallopt`` takes), for training started from Python.

``HANDSSCA_MALLOC=system`` leaves glibc's defaults. Other C libraries (musl ...): nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
#: Free memory at the top of the heap kept for the next step instead of being returned (bytes).
TRIM_THRESHOLD = 16 << 30
#: The same settings as glibc tunables, for a process started with them.
TUNABLES = f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={16 << 30}:glibc.malloc.top_pad={1 << 30}"
#: Extra memory asked of the kernel each time the heap grows (bytes): fewer, larger growths.
TOP_PAD = 1 << 30

_done: dict | None = None


def _disabled() -> bool:
    return os.environ.get("HANDSSCA_MALLOC", "").strip().lower() in ("system", "default", "off", "0")


def glibc_version() -> str | None:
    """The C library's glibc version, or None when it is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        return libc.gnu_get_libc_version().decode()
    except (OSError, AttributeError):
        return None


#: Set in the environment of the process started again: it is never started a third time (glibc may drop
#: GLIBC_TUNABLES for a privileged process, so the tunables themselves cannot say it was done).
REEXEC_MARK = "HANDSSCA_MALLOC_REEXEC"


def reexec_with_tunables(argv: list[str] | None = None) -> None:
    """Start this command again with :data:`TUNABLES` in ``GLIBC_TUNABLES`` (glibc reads them only at
    start); returns without doing anything when they are set already, when this is the started-again
    process, when ``HANDSSCA_MALLOC=system``, or when the C library is not glibc. ``argv``: the arguments
    after the interpreter (default: the interpreter's own, ``sys.orig_argv[1:]``, so that its options
    and ``-m`` stay). Only for the console command (it replaces the process)."""
    if _disabled() or os.environ.get(REEXEC_MARK) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    if glibc_version() is None:
        return
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ":".join(t for t in (env.get("GLIBC_TUNABLES", ""), TUNABLES) if t)
    env[REEXEC_MARK] = "1"
    args = list(sys.orig_argv[1:] if argv is None else argv)
    try:
        os.execve(sys.executable, [sys.executable, *args], env)
    except OSError:  # could not start again: carry on with mallopt
        tune_malloc()


def tune_malloc() -> dict | None:
    """Set glibc's malloc for steady large allocations (see the module docstring), once per process.
    Returns the settings applied, or None (not glibc, or ``HANDSSCA_MALLOC=system``)."""
    global _done
    if _done is not None:
        return _done
    if _disabled() or not sys.platform.startswith("linux"):
        return None
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):  # set at the start (reexec_with_tunables)
        _done = {"glibc_tunables": os.environ["GLIBC_TUNABLES"]}
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: their own allocators, left alone
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = {"M_MMAP_MAX": (M_MMAP_MAX, 0), "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, min(TRIM_THRESHOLD, 2**31 - 1))}
    settings["M_TOP_PAD"] = (M_TOP_PAD, TOP_PAD)
    applied = {name: value for name, (param, value) in settings.items() if mallopt(param, value) == 1}
    _done = {"glibc": version, **applied}
    return _done
