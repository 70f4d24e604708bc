"""glibc's malloc keeps freed memory for the next step: a large buffer freed stays in the process (ready
for the next step's, no page faults), where glibc's defaults give it back to the kernel at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from handssca.allocator import TUNABLES, glibc_version

pytestmark = pytest.mark.skipif(glibc_version() is None, reason="glibc only")

#: Allocate and touch a 256 MiB buffer, free it; print how many MiB of it the process still holds.
PROBE = """
import os, numpy as np
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = rss_mib()
a = np.ones(1 << 25)
del a
print(round(rss_mib() - before))
"""


def _run(env_extra: dict, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "HANDSSCA_MALLOC")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_the_command_starts_again_with_the_tunables_and_reuses_freed_memory():
    inner = PROBE + "print(os.environ.get('GLIBC_TUNABLES'))\n"
    # started again with the tunables, or (HANDSSCA_MALLOC=system) carrying on as it is
    code = (
        f"from handssca.allocator import reexec_with_tunables\nreexec_with_tunables(['-c', {inner!r}])\nexec({inner!r})"
    )
    tuned = _run({}, code)
    assert tuned.returncode == 0, tuned.stderr
    kept, tunables = tuned.stdout.split()
    assert tunables == TUNABLES
    plain = _run({"HANDSSCA_MALLOC": "system"}, code)  # the documented way to keep glibc's defaults
    assert plain.returncode == 0, plain.stderr
    plain_kept, plain_tunables = plain.stdout.split()
    assert plain_tunables == "None"
    assert int(kept) > 200 and int(plain_kept) < 50, (kept, plain_kept)  # MiB of the 256 still held


def test_mallopt_from_python_reuses_freed_memory():
    code = "from handssca.allocator import tune_malloc; print(tune_malloc())\n" + PROBE
    tuned = _run({}, code)
    assert tuned.returncode == 0, tuned.stderr
    settings, kept = tuned.stdout.strip().splitlines()
    assert "M_MMAP_MAX" in settings and int(kept) > 200
    off = _run({"HANDSSCA_MALLOC": "system"}, code)
    settings, kept = off.stdout.strip().splitlines()
    assert settings == "None" and int(kept) < 50


def test_the_module_command_starts_again_as_a_module():
    """``python -m handssca.cli`` starts again as ``-m handssca.cli`` (as a script, the package's folder
    would come first on sys.path and its modules would shadow others')."""
    code = (
        "import runpy, sys; sys.argv = ['handssca', '--version']; "
        "runpy.run_module('handssca.cli', run_name='__main__', alter_sys=True)"
    )
    r = _run({}, code)
    assert r.returncode == 0 and "handssca" in r.stdout + r.stderr, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "handssca.cli", "--version"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"},
        timeout=120,
    )
    assert r.returncode == 0 and "handssca" in r.stdout + r.stderr, r.stderr
