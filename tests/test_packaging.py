"""What pyproject.toml declares covers what the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def declared_minimum(name: str) -> tuple[int, ...]:
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(rf"{name}\b", d, re.IGNORECASE))
    m = re.search(r">=\s*([0-9][0-9.]*)", spec)
    assert m, f"{spec}: no lower bound"
    return tuple(int(p) for p in m.group(1).split("."))


def test_pillow_pin_covers_the_enums_the_code_uses():
    # Image.Resampling / Transpose / Transform appeared in Pillow 9.1 (9.0 only has Image.BILINEAR etc.)
    used = sorted(
        {
            m
            for p in (ROOT / "src").rglob("*.py")
            for m in re.findall(r"Image\.(Resampling|Transpose|Transform)\b", p.read_text())
        }
    )
    assert used, "the check has nothing to check any more"
    assert declared_minimum("pillow") >= (9, 1), f"the code uses Image.{used} (Pillow >= 9.1)"
