"""scripts/ship_models.py: a bad --lateral-sigma is refused before the shipped model is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "napari_hdcyclegan" / "weights" / "spectralis-real"


@pytest.mark.parametrize("sigma", ["20", "-1", "nan"])
def test_bad_lateral_sigma_is_refused_before_anything_is_replaced(tmp_path, sigma):
    before = {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()}
    export = tmp_path / "export"  # never read: the refusal comes first
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_models.py"), str(export), "spectralis-real",
                          "--lateral-sigma", sigma], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: --lateral-sigma {float(sigma):g}: must be from 0 to 16"]
    assert {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()} == before
