"""scripts/ship_models.py: a bad --lateral-sigma or --floor-percentile is refused before the shipped model is
touched; the floor percentile is written into the normalisation."""

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


@pytest.mark.parametrize("q", ["50", "-1", "nan"])
def test_bad_floor_percentile_is_refused_before_anything_is_replaced(tmp_path, q):
    before = {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_models.py"), str(tmp_path / "export"),
                          "spectralis-real", "--floor-percentile", q], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: --floor-percentile {float(q):g}: must be from 0 to below 50"]
    assert {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()} == before


def test_the_floor_percentile_is_written_into_the_normalisation_and_0_removes_it(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("ship_models", ROOT / "scripts" / "ship_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "config.json").write_text(json.dumps({"name": "m", "normalisation": {"method": "dtype"}}))
    module._set_floor_percentile(tmp_path, 0.1)
    assert json.loads((tmp_path / "config.json").read_text())["normalisation"] == {"method": "dtype",
                                                                                   "floor_percentile": 0.1}
    module._set_floor_percentile(tmp_path, 0)
    assert json.loads((tmp_path / "config.json").read_text())["normalisation"] == {"method": "dtype"}
