"""CompareWidget end to end: baseline layers, grid layout, linked contrast, metrics table."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("napari")

SCALE = (60.0, 3.87, 11.45)
TRANSLATE = (120.0, 5.0, 10.0)
TIMEOUT_MS = 60_000
#: Cartoon retina (4, 96, 64): dark background, a bright band (rows, gain) with a brighter outer layer.
SHAPE = (4, 96, 64)
BANDS = ((40, 60, 110.0), (54, 60, 70.0))


@pytest.fixture
def setup(make_napari_viewer, tiny_model, cartoon_volume):
    """Viewer with a noisy volume, an unrelated layer and a CompareWidget using the tiny model."""
    from napari_hdcyclegan._widgets.compare import CompareWidget

    viewer = make_napari_viewer()
    other = viewer.add_image(np.zeros((8, 8), np.float32), name="other", units="um")
    layer = viewer.add_image(cartoon_volume(*SHAPE, BANDS), name="oct", scale=SCALE, translate=TRANSLATE,
                             units="um", axis_labels=("b-scan", "depth", "lateral"))
    widget = CompareWidget(viewer)
    widget.layer_combo.value = layer
    widget.set_weights(tiny_model)
    widget.device_combo.value = "cpu"
    return viewer, layer, other, widget


def table(widget) -> dict[str, dict[str, str]]:
    """The metrics table as {row: {column: text}}."""
    from napari_hdcyclegan._widgets.compare import COLUMNS

    t = widget.table
    return {t.verticalHeaderItem(r).text(): {key: t.item(r, c).text()
                                             for c, key in enumerate(COLUMNS)}
            for r in range(t.rowCount())}


def run_and_wait(qtbot, widget, rows: int) -> None:
    """Run the comparison and wait until the table has ``rows`` filled rows."""
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.worker is None and widget.score_worker is None
                    and widget.table.rowCount() == rows and widget.table.item(0, 0) is not None,
                    timeout=TIMEOUT_MS)


def test_current_bscan_bm3d_wavelet_grid_and_table(qtbot, setup):
    pytest.importorskip("bm3d")
    viewer, layer, other, widget = setup
    viewer.dims.set_current_step(0, 2)
    run_and_wait(qtbot, widget, rows=4)
    for name in ("oct_preview", "oct_bm3d", "oct_wavelet"):
        out = viewer.layers[name]
        assert out.data.shape == (1, 96, 64) and out.data.dtype == np.uint8
        assert out.translate[0] == pytest.approx(TRANSLATE[0] + 2 * SCALE[0])
        np.testing.assert_allclose(out.scale, SCALE)
        assert tuple(out.contrast_limits) == tuple(layer.contrast_limits)
        assert out.visible and out.metadata["bscan"] == 2
    assert viewer.canvas.grid.enabled and not other.visible
    # raw first, then model and baselines: the lowest visible layer is the grid's top-left
    names = [lay.name for lay in viewer.layers if lay.visible]
    assert names == ["oct", "oct_preview", "oct_bm3d", "oct_wavelet"]
    rows = table(widget)
    assert list(rows) == ["raw", "tiny", "bm3d", "wavelet"]  # the row names the model
    for row in rows.values():
        assert float(row["CNR"]) > 0 and float(row["MSR"]) > 0 and row["PSNR"] == "-"
    # speckle reduction must raise the mean-to-std ratio of the bright band
    assert float(rows["wavelet"]["MSR"]) > float(rows["raw"]["MSR"])
    # shared contrast limits stay shared
    layer.contrast_limits = (10, 200)
    assert tuple(viewer.layers["oct_wavelet"].contrast_limits) == (10, 200)
    widget.grid_check.value = False
    assert not viewer.canvas.grid.enabled and other.visible


def test_volume_reuses_denoised_layer_and_scores_against_reference(qtbot, setup, cartoon_volume):
    from scipy.ndimage import median_filter

    viewer, layer, other, widget = setup
    denoised = viewer.add_image(median_filter(layer.data, size=(1, 5, 5)), name="oct_denoised",
                                scale=SCALE, translate=TRANSLATE, units="um")
    before = denoised.data.copy()
    viewer.add_image(cartoon_volume(*SHAPE, BANDS, seed=None).astype(np.uint8), name="oct_ln", scale=SCALE,
                     translate=TRANSLATE, units="um")
    widget.reference_combo.value = viewer.layers["oct_ln"]
    widget.bm3d_check.value = False
    widget.scope_radio.value = "whole volume"
    viewer.dims.set_current_step(0, 0)
    run_and_wait(qtbot, widget, rows=3)
    wavelet = viewer.layers["oct_wavelet"]
    assert wavelet.data.shape == layer.data.shape and wavelet.data.dtype == np.uint8
    np.testing.assert_allclose(wavelet.translate, TRANSLATE)
    assert tuple(wavelet.axis_labels) == ("b-scan", "depth", "lateral")
    np.testing.assert_array_equal(denoised.data, before)  # reused, not recomputed
    assert "oct_ln" not in [lay.name for lay in viewer.layers if lay.visible]
    rows = table(widget)
    assert list(rows) == ["raw", "oct_denoised", "wavelet"]  # no model recorded: the layer's name
    psnr = {name: float(row["PSNR"]) for name, row in rows.items()}
    assert psnr["wavelet"] > psnr["raw"] and psnr["oct_denoised"] > psnr["raw"]
    assert 0 < float(rows["raw"]["SSIM"]) < 1
    # moving the slider re-scores the new b-scan (another speckle draw: other numbers)
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: table(widget) != rows, timeout=TIMEOUT_MS)


def test_missing_bm3d_extra_notifies_and_still_runs_wavelet(qtbot, setup, monkeypatch):
    from napari_hdcyclegan import baselines
    from napari_hdcyclegan._widgets import compare

    def no_bm3d(image, **kwargs):
        raise baselines.MissingExtraError('pip install "napari-hdcyclegan[bm3d]"')

    messages = []
    monkeypatch.setitem(baselines.BASELINES, "bm3d", no_bm3d)
    monkeypatch.setattr(compare, "show_info", messages.append)
    viewer, layer, other, widget = setup
    run_and_wait(qtbot, widget, rows=3)
    assert "oct_wavelet" in viewer.layers and "oct_bm3d" not in viewer.layers
    assert any("bm3d" in m and "napari-hdcyclegan[bm3d]" in m for m in messages)
    assert list(table(widget)) == ["raw", "tiny", "wavelet"]


def test_cancel_keeps_existing_layers(qtbot, setup):
    viewer, layer, other, widget = setup
    widget.bm3d_check.value = False
    run_and_wait(qtbot, widget, rows=3)
    previous = viewer.layers["oct_wavelet"].data.copy()
    widget.scope_radio.value = "whole volume"
    widget.nlmeans_check.value = True
    worker = widget.run()
    widget.cancel()  # before the first b-scan: the worker yields once before any compute
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert "Cancelled" in widget.status.value
    assert "oct_nlmeans" not in viewer.layers
    np.testing.assert_array_equal(viewer.layers["oct_wavelet"].data, previous)
    assert worker.abort_requested


def test_chosen_weights_and_device_used_tiles_titled_no_deprecated_grid(qtbot, setup, tiny_model):
    import warnings

    viewer, layer, other, widget = setup
    assert widget.weights_combo.value == str(tiny_model) and widget.device_combo.value == "cpu"
    widget.bm3d_check.value = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_and_wait(qtbot, widget, rows=3)
        widget.grid_check.value = False
        widget.grid_check.value = True
    assert not [w for w in caught if "viewer.grid" in str(w.message)]
    provenance = viewer.layers["oct_preview"].metadata["provenance"]
    assert provenance["weights"] == str(tiny_model) and provenance["device"] == "cpu"
    assert list(table(widget)) == ["raw", "tiny", "wavelet"]
    shown = ["oct", "oct_preview", "oct_wavelet"]
    assert all(viewer.layers[name].name_overlay.visible for name in shown)  # tile titles
    assert viewer.canvas.grid.enabled
    widget.grid_check.value = False
    assert not any(viewer.layers[name].name_overlay.visible for name in shown)


def test_another_models_denoised_layer_is_neither_reused_nor_replaced(qtbot, setup):
    viewer, layer, other, widget = setup
    theirs = viewer.add_image(layer.data.copy(), name="oct_denoised", scale=SCALE,
                              translate=TRANSLATE, units="um",
                              metadata={"provenance": {"model": "other", "weights": "other"}})
    widget.bm3d_check.value = False
    widget.scope_radio.value = "whole volume"
    run_and_wait(qtbot, widget, rows=3)
    assert list(table(widget)) == ["raw", "tiny", "wavelet"]
    np.testing.assert_array_equal(theirs.data, layer.data)
    assert theirs.metadata["provenance"]["model"] == "other"
    ours = viewer.layers["oct_denoised_tiny"]
    assert ours.data.shape == layer.data.shape and ours.metadata["provenance"]["model"] == "tiny"


def test_input_removed_during_a_run_says_the_result_was_dropped(qtbot, setup, monkeypatch):
    from napari_hdcyclegan._widgets import _workers

    viewer, layer, other, widget = setup
    widget.bm3d_check.value = False
    shown: list[str] = []
    monkeypatch.setattr(_workers, "show_info", shown.append)
    assert widget.run() is not None
    viewer.layers.remove(layer)  # before the worker's result reaches the main thread
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert [lay.name for lay in viewer.layers] == ["other"]
    assert "'oct' was removed during the run; result dropped" in widget.status.value
    assert shown == [widget.status.value]


def test_auto_recognises_a_layer_that_auto_made():
    from types import SimpleNamespace

    from napari_hdcyclegan._widgets._scores import made_with

    by_auto = SimpleNamespace(metadata={"provenance": {"weights": "spectralis-real",
                                                       "auto_choice": "split PSNR 28.8 dB >= 16 dB"}})
    by_name = SimpleNamespace(metadata={"provenance": {"weights": "spectralis-real"}})
    # the default weights ("auto") reuse a Denoise result made with "auto" instead of adding
    # <input>_denoised_<model> beside it
    assert made_with(by_auto, "auto") and made_with(by_auto, "spectralis-real")
    assert not made_with(by_name, "auto") and made_with(by_name, "spectralis-real")
    assert not made_with(by_auto, "bioptigen-duke")


def test_a_result_with_other_smoothing_or_adapted_is_not_taken_for_the_models():
    from types import SimpleNamespace

    from napari_hdcyclegan._widgets._scores import made_with
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir

    own = read_config(resolve_model_dir("spectralis-real")).lateral_sigma

    def result(**extra):
        provenance = {"weights": "spectralis-real", "auto_choice": "noise level", **extra}
        return SimpleNamespace(metadata={"provenance": provenance})

    assert made_with(result(config={"lateral_sigma": own}), "spectralis-real")
    assert made_with(result(config={"lateral_sigma": own}), "auto")
    for other in (result(config={"lateral_sigma": own + 1.9}), result(config={"lateral_sigma": 0.0}),
                  result(config={"lateral_sigma": own}, adaptation={"steps": 60})):
        assert not made_with(other, "spectralis-real") and not made_with(other, "auto")


def test_a_denoise_result_with_its_own_smoothing_is_recomputed(qtbot, setup):
    """A Denoise result made with 3 px of smoothing is not the tiny model's own output: Compare runs the model."""
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget

    viewer, layer, other, widget = setup
    denoise = DenoiseWidget(viewer)
    denoise.set_weights(widget.weights)
    denoise.device_combo.value = "cpu"
    denoise.layer_combo.value = layer
    denoise.lateral_combo.value = next(k for k in denoise.lateral_combo.choices if k.startswith("3"))
    assert denoise.run() is not None
    qtbot.waitUntil(lambda: denoise.worker is None, timeout=TIMEOUT_MS)
    smoothed = viewer.layers["oct_denoised"]
    assert smoothed.metadata["provenance"]["config"]["lateral_sigma"] == 3.0
    widget.bm3d_check.value = False
    widget.scope_radio.value = "whole volume"
    run_and_wait(qtbot, widget, rows=3)
    assert list(table(widget)) == ["raw", "tiny", "wavelet"]  # the model's own output, beside it
    assert "oct_denoised_tiny" in viewer.layers


def test_results_keep_the_inputs_scan_fields(qtbot, setup):
    viewer, layer, other, widget = setup
    layer.metadata = {"laterality": "OS", "scan_pattern": "volume", "path": "/scans/a.vol"}
    widget.bm3d_check.value = False
    run_and_wait(qtbot, widget, rows=3)
    for name in ("oct_preview", "oct_wavelet"):  # saved with the plugin's writer, these go with them
        meta = viewer.layers[name].metadata
        assert (meta["laterality"], meta["scan_pattern"]) == ("OS", "volume") and "path" not in meta


def test_linear_intensities_are_said_to_need_log_compression(qtbot, setup, monkeypatch, linear_scan):
    from napari_hdcyclegan._widgets import compare

    said: list[str] = []
    monkeypatch.setattr(compare, "show_info", said.append)
    viewer, layer, other, widget = setup
    widget.bm3d_check.value = False
    layer.data = linear_scan((4, 96, 64))
    run_and_wait(qtbot, widget, rows=3)
    assert "the input looks like linear intensities" in widget.status.value
    assert any("oct looks like linear intensities" in s and "log-compress" in s for s in said)
    layer.data = np.log1p(layer.data * 1000).astype(np.float32)  # the same scan log-compressed: nothing said
    said.clear()
    run_and_wait(qtbot, widget, rows=3)
    assert "linear" not in widget.status.value and not said


def test_on_another_b_scan_the_status_says_why_only_raw_is_scored(qtbot, setup):
    viewer, layer, other, widget = setup
    widget.bm3d_check.value = False
    viewer.dims.set_current_step(0, 2)
    run_and_wait(qtbot, widget, rows=3)
    shown = widget.status.value
    assert shown.startswith("Shown: ") and "table scores raw only" not in shown
    viewer.dims.set_current_step(0, 0)
    qtbot.waitUntil(lambda: widget.table.rowCount() == 1, timeout=TIMEOUT_MS)
    assert list(table(widget)) == ["raw"]
    assert widget.status.value == (shown + "; on this b-scan the table scores raw only: tiny, wavelet were "
                                   "computed for another b-scan (Run compares this one)")
    viewer.dims.set_current_step(0, 2)  # back where they were computed: every row, and the plain status
    qtbot.waitUntil(lambda: widget.table.rowCount() == 3, timeout=TIMEOUT_MS)
    assert widget.status.value == shown


class NoNewAxis:
    """A 2D array-like that, like zarr or h5py arrays, refuses ``data[None]``."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        if key is None or (isinstance(key, tuple) and None in key):
            raise IndexError("new axes are not supported")
        return self.data[key]

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)


def test_a_lazily_loaded_2d_layer_is_compared(qtbot, setup, cartoon_volume):
    viewer, layer, other, widget = setup
    flat = viewer.add_image(NoNewAxis(cartoon_volume(*SHAPE, BANDS)[0]), name="flat")
    widget.layer_combo.value = flat
    widget.bm3d_check.value = False
    run_and_wait(qtbot, widget, rows=3)
    assert viewer.layers["flat_wavelet"].data.shape == SHAPE[1:]


def test_the_current_b_scan_maps_by_the_volumes_levels(tmp_path, cartoon_volume, release_engine):
    """12-bit data in uint16: a dim b-scan (10 bits alone) compared on its own gets the model output
    of the volume run, not one mapped by its own bit depth."""
    import torch

    from napari_hdcyclegan._widgets.compare import compute_comparison
    from napari_hdcyclegan.engine import get_denoiser
    from napari_hdcyclegan.model import Generator, ModelConfig, save_model
    from napari_hdcyclegan.progress import drive

    torch.manual_seed(0)
    model = save_model(tmp_path / "dtype", {"G_L": Generator(width=4)},
                       ModelConfig(generator_width=4, name="dtype", trained=True, normalisation={"method": "dtype"}))
    volume = cartoon_volume(4, 64, 64, ((24, 42, 110.0),)).astype(np.uint16) * 16
    volume[0] //= 4
    full = get_denoiser(str(model), "cpu").denoise(volume)
    part = drive(compute_comparison(volume[:1], (), True, str(model), "cpu", volume))["results"]["model"]
    np.testing.assert_allclose(part[0].astype(int), full[0].astype(int), atol=1)  # batching: float rounding
    alone = drive(compute_comparison(volume[:1], (), True, str(model), "cpu"))["results"]["model"]
    assert np.abs(alone[0].astype(int) - full[0].astype(int)).mean() > 10  # mapped by its own 10 bits


def test_the_table_scores_every_b_scan_on_the_reference_volumes_range(cartoon_volume):
    """A dim b-scan of a 12-bit reference volume is scored on 4095 as the others are, not on its own
    10 bits (PSNR 12 dB apart between b-scans of one volume)."""
    from napari_hdcyclegan._widgets._scores import score_or_reason
    from napari_hdcyclegan.metrics import score_methods

    reference = cartoon_volume(3, 64, 64, ((24, 42, 110.0),)).astype(np.uint16) * 16
    reference[0] //= 4
    noisy = np.clip(reference[0] + np.random.default_rng(0).normal(0, 20, (64, 64)), 0, 4095).astype(np.uint16)
    scores, reason, known = score_or_reason({"raw": noisy}, reference[0], reference)
    assert reason == "" and known == {"data_range": 4095.0}
    on_volume = score_methods({"raw": noisy}, reference[0], data_range=4095.0, align=True)["raw"]
    alone = score_methods({"raw": noisy}, reference[0], align=True)["raw"]
    key = next(k for k in on_volume if "PSNR" in k.upper())
    assert scores["raw"][key] == on_volume[key] and abs(alone[key] - on_volume[key]) > 10
    kept = score_or_reason({"raw": noisy}, reference[0], reference, {"data_range": 1000.0})
    assert kept[2] == {"data_range": 1000.0} and kept[0]["raw"][key] != scores["raw"][key]  # not measured again
