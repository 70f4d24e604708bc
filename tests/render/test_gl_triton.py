"""The GL renderer and Triton in one process (Triton comes with CUDA builds of torch)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np
from handssca.render.gl import GLRenderer, gl_available
ok, why = gl_available()
if not ok:
    print("NO_GL", why)
    raise SystemExit(0)
r = GLRenderer()
K = np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
tri = np.array([[0.0, 0, 0.5], [0.05, 0, 0.5], [0, 0.05, 0.5]])
r.render(tri, np.array([[0, 1, 2]]), K, (64, 64))
import torch._dynamo  # imports triton, as the first call of a registered op does
print("OK")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_loads_after_a_gl_context_without_crashing():
    """Before: Triton loaded after Mesa's EGL (llvmpipe) crashed the process (segmentation fault)."""
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    if "NO_GL" in r.stdout:
        pytest.skip(r.stdout.strip())
    assert "OK" in r.stdout
