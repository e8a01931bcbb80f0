"""The README's Python API example runs as written (on a small simulated volume saved as scan.tif)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_api_example_runs(tmp_path, monkeypatch, capsys, release_engine):
    from napari_hdcyclegan.io import read_oct, write_tiff
    from napari_hdcyclegan.simulate import simulate_volume

    readme = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- api-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    sim = simulate_volume(n_bscans=2, seed=1, shape=(128, 128))
    write_tiff(tmp_path / "scan.tif", sim.hn, scale=(120.0, 3.87, 11.45))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out
    assert "b-scans 0-" in out and " px retina" in out
    clean = read_oct(tmp_path / "scan_denoised.tif")
    assert clean.data.shape == sim.hn.shape and clean.data.dtype == sim.hn.dtype
    np.testing.assert_allclose(clean.scale, (120.0, 3.87, 11.45))
