"""Tests for the npe2 sample data (napari_hdcyclegan._sample_data)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_hdcyclegan import _sample_data, simulate

PLUGIN = "napari-hdcyclegan"


def _fake_volume(n: int = 2, h: int = 32, w: int = 40) -> SimpleNamespace:
    """Stand-in for simulate.load_sample_volume(): HN/LN/clean and ILM/RPE truth rows."""
    rng = np.random.default_rng(0)
    clean = rng.random((n, h, w), dtype=np.float32)
    ilm = np.full((n, w), 8.0, np.float32)
    return SimpleNamespace(hn=clean + 0.1, ln=clean + 0.01, clean=clean, metadata={"seed": 0},
                           boundaries={"ILM": ilm, "RPE": ilm + 15, "INL": ilm + 7})


def _check_simulated(layers, shape):
    images = [(d, kw) for d, kw, kind in layers if kind == "image"]
    shapes = {kw["name"]: (d, kw) for d, kw, kind in layers if kind == "shapes"}
    assert [kw["name"] for _, kw in images] == ["simulated_HN", "simulated_LN", "simulated_clean"]
    scale = (120.0, simulate.SPECTRALIS_UM_PER_PX["axial"], simulate.SPECTRALIS_UM_PER_PX["lateral"])
    for data, kw in images:
        assert data.shape == shape
        assert kw["scale"] == pytest.approx(scale)
        assert kw["units"] == ("um", "um", "um") and kw["axis_labels"] == ("b-scan", "depth", "lateral")
    assert set(shapes) == {"simulated_ILM", "simulated_RPE"}
    for paths, kw in shapes.values():
        assert kw["scale"] == pytest.approx(scale) and kw["metadata"]["heights"].shape == (shape[0], shape[2])
        assert {int(p[0, 0]) for p in paths} == set(range(shape[0]))  # one line per b-scan
    ilm = shapes["simulated_ILM"][1]["metadata"]["heights"]
    rpe = shapes["simulated_RPE"][1]["metadata"]["heights"]
    assert np.nanmean(ilm) < np.nanmean(rpe)


def test_simulated_volume_layers(monkeypatch):
    monkeypatch.setattr(simulate, "load_sample_volume", lambda: _fake_volume(), raising=False)
    _check_simulated(_sample_data.simulated_volume(), (2, 32, 40))


def test_simulated_volume_shipped_sample():
    vol = simulate.load_sample_volume()
    _check_simulated(_sample_data.simulated_volume(), vol.hn.shape)


def test_heidelberg_vol_sample():
    pytest.importorskip("eyepy")
    assert (_sample_data.DATA_DIR / "LICENSE-heidelberg_circle.txt").read_text().count("MIT License") == 1
    layers = _sample_data.heidelberg_vol()
    (data, kw, kind), *rest = layers
    assert kind == "image" and data.shape == (1, 496, 768) and kw["name"] == "heidelberg_circle"
    assert kw["scale"][1:] == pytest.approx((3.8717, 17.891), abs=1e-3)
    assert {k["name"] for _, k, t in rest if t == "shapes"} >= {"heidelberg_circle_ILM", "heidelberg_circle_RPE"}


def test_viewer_open_sample(make_napari_viewer_proxy):
    pytest.importorskip("eyepy")
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "heidelberg_vol")
    assert viewer.layers["heidelberg_circle"].data.shape == (1, 496, 768)
    assert viewer.layers["heidelberg_circle_RPE"].ndim == 3


def test_heidelberg_single_bscan_gets_um_and_nominal_spacing():
    pytest.importorskip("eyepy")
    layers = _sample_data.heidelberg_vol()
    for _data, kw, _kind in layers:
        assert tuple(kw["units"]) == ("um", "um", "um"), kw["name"]
        assert kw["scale"][0] == _sample_data.BSCAN_SPACING_UM
    assert "nominal" in layers[0][1]["metadata"]["bscan_spacing_um"]


def test_both_samples_open_without_unit_warnings_and_with_a_short_slider(make_napari_viewer,
                                                                          monkeypatch):
    pytest.importorskip("eyepy")
    import napari._vispy.canvas as vispy_canvas

    warned = []
    monkeypatch.setattr(vispy_canvas, "show_warning", warned.append)
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "simulated_volume")
    viewer.open_sample(PLUGIN, "heidelberg_vol")
    viewer.screenshot(canvas_only=True, flash=False)  # a draw: napari checks units on drawing
    assert viewer.layers.extent.units is not None  # None is what napari warns about
    assert not [w for w in warned if "units" in str(w)]
    assert viewer.dims.nsteps[0] == viewer.layers["simulated_HN"].data.shape[0]
