"""DenoiseWidget end to end with a tiny model: result layer, cancel, residual, blend, preview."""

from __future__ import annotations

import threading

import numpy as np
import pytest

SCALE = (60.0, 3.87, 11.45)
TRANSLATE = (120.0, 5.0, 10.0)
TIMEOUT_MS = 60_000
#: A two-level bright band (rows, gain) of the speckled (6, 64, 64) uint8 cartoon retina.
BANDS = ((24, 42, 110.0), (36, 42, 70.0))


@pytest.fixture
def setup(make_napari_viewer, tiny_model, cartoon_volume):
    """A viewer with an anisotropic volume layer and a docked DenoiseWidget using the tiny model."""
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    layer = viewer.add_image(cartoon_volume(6, 64, 64, BANDS), name="oct", scale=SCALE,
                             translate=TRANSLATE, units="um", axis_labels=("b-scan", "depth", "lateral"))
    widget = DenoiseWidget(viewer)
    widget.set_weights(tiny_model)
    widget.device_combo.value = "cpu"
    widget.batch_spin.value = 2
    return viewer, layer, widget


def test_choosing_a_device_sets_its_default_batch(setup, monkeypatch):
    from napari_hdcyclegan import engine

    _, _, widget = setup
    assert widget.batch_spin.value == 2  # the fixture's own choice stands until the device changes
    monkeypatch.setattr(engine, "default_batch_size", lambda device: 9 if device == "auto" else engine.CPU_BATCH)
    widget.device_combo.value = "auto"
    assert widget.batch_spin.value == 9
    widget.device_combo.value = "cpu"
    assert widget.batch_spin.value == engine.CPU_BATCH
    widget.batch_spin.value = 7  # a user's choice stays while the device's default does not change
    monkeypatch.setattr(engine, "default_batch_size", lambda device: engine.CPU_BATCH)
    widget.device_combo.value = "auto"
    assert widget.batch_spin.value == 7


def test_a_new_widget_starts_at_its_devices_default_batch(make_napari_viewer):
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget
    from napari_hdcyclegan.engine import default_batch_size

    widget = DenoiseWidget(make_napari_viewer())
    assert widget.batch_spin.value == default_batch_size(widget.device_combo.value)


def run_to_end(qtbot, widget) -> None:
    """Start a run and wait until its worker has finished."""
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def test_denoise_adds_result_with_geometry_and_provenance(qtbot, setup):
    viewer, layer, widget = setup
    assert widget.layer_combo.value is layer
    run_to_end(qtbot, widget)
    out = viewer.layers["oct_denoised"]
    assert out.data.shape == layer.data.shape and out.data.dtype == np.uint8
    np.testing.assert_allclose(out.scale, SCALE)
    np.testing.assert_allclose(out.translate, TRANSLATE)
    assert tuple(out.axis_labels) == ("b-scan", "depth", "lateral")
    assert tuple(out.units) == tuple(layer.units)
    assert tuple(out.contrast_limits) == tuple(layer.contrast_limits)
    assert out.metadata["source_layer"] == "oct" and out.metadata["provenance"]
    assert not np.array_equal(out.data, layer.data)  # the network did something
    assert widget.progress_bar.value == layer.data.shape[0]
    residual = viewer.layers["oct_residual"]
    assert residual.data.dtype == np.float32
    np.testing.assert_allclose(residual.data, layer.data.astype(np.float32)
                               - out.data.astype(np.float32))
    lo, hi = residual.contrast_limits
    assert lo == pytest.approx(-hi) and hi > 0
    np.testing.assert_allclose(residual.scale, SCALE)


def test_second_run_replaces_layer_and_reuses_model(qtbot, setup):
    from napari_hdcyclegan import engine

    viewer, layer, widget = setup
    run_to_end(qtbot, widget)
    first = viewer.layers["oct_denoised"]
    first_data = first.data.copy()
    n_layers = len(viewer.layers)
    denoiser = engine.get_denoiser(str(widget.weights_combo.value), "cpu")
    run_to_end(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["oct_denoised"] is first
    np.testing.assert_array_equal(first.data, first_data)  # deterministic model
    assert engine.get_denoiser(str(widget.weights_combo.value), "cpu") is denoiser


def test_cancel_stops_between_batches_and_keeps_previous_result(qtbot, setup, monkeypatch):
    from napari_hdcyclegan import engine

    viewer, layer, widget = setup
    run_to_end(qtbot, widget)
    previous = viewer.layers["oct_denoised"].data.copy()

    gate = threading.Event()
    batches = []
    released = []  # whether each pause ended by the gate, not by its timeout
    real_get = engine.get_denoiser

    class Gated:
        """A denoiser whose output differs from the real one and that pauses after batch 1."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def iter_denoise(self, data):
            for start, stop, chunk in self.inner.iter_denoise(data):
                batches.append(start)
                yield start, stop, np.zeros_like(chunk)
                # as long as the test's own timeout: on a loaded machine a short pause ran out before the
                # main thread cancelled, and the run finished instead of aborting
                released.append(gate.wait(TIMEOUT_MS / 1000))

    monkeypatch.setattr(engine, "get_denoiser", lambda *a, **k: Gated(real_get(*a, **k)))
    worker = widget.run()
    aborted = []
    worker.aborted.connect(lambda: aborted.append(True))
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 2, timeout=TIMEOUT_MS)
    widget.cancel()
    gate.set()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert all(released), "the worker went on before the test cancelled it"
    assert aborted == [True]
    assert len(batches) < 3  # 6 b-scans in batches of 2: the run stopped early
    np.testing.assert_array_equal(viewer.layers["oct_denoised"].data, previous)
    assert "Cancelled" in widget.status.value
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_blend_slider_sets_output_opacity(qtbot, setup):
    viewer, layer, widget = setup
    run_to_end(qtbot, widget)
    widget.blend_slider.value = 0.3
    assert viewer.layers["oct_denoised"].opacity == pytest.approx(0.3)
    assert layer.visible


def test_preview_denoises_the_bscan_under_the_slider(qtbot, setup):
    viewer, layer, widget = setup
    run_to_end(qtbot, widget)
    full = viewer.layers["oct_denoised"].data
    viewer.dims.set_current_step(0, 3)
    widget.preview_check.value = True  # schedules a debounced preview
    qtbot.waitUntil(lambda: "oct_preview" in viewer.layers, timeout=TIMEOUT_MS)
    preview = viewer.layers["oct_preview"]
    assert preview.data.shape == (1, 64, 64) and preview.data.dtype == np.uint8
    assert preview.metadata["bscan"] == 3
    assert preview.translate[0] == pytest.approx(TRANSLATE[0] + 3 * SCALE[0])
    np.testing.assert_allclose(preview.translate[1:], TRANSLATE[1:])
    np.testing.assert_allclose(preview.data[0].astype(int), full[3].astype(int), atol=1)


def test_preview_latest_request_wins(qtbot, setup):
    viewer, layer, widget = setup
    widget.preview_check.value = True
    widget._preview_timer.stop()
    viewer.dims.set_current_step(0, 1)
    assert widget.start_preview() is not None
    viewer.dims.set_current_step(0, 4)
    widget._preview_timer.stop()
    widget.start_preview()  # deferred: a preview is running; this one runs next and wins
    widget._preview_timer.stop()
    qtbot.waitUntil(lambda: widget.preview_worker is None and not widget._preview_pending
                    and "oct_preview" in viewer.layers
                    and viewer.layers["oct_preview"].metadata["bscan"] == 4, timeout=TIMEOUT_MS)
    assert viewer.layers["oct_preview"].translate[0] == pytest.approx(TRANSLATE[0] + 4 * SCALE[0])


def test_2d_layer_and_bad_weights(qtbot, make_napari_viewer, tmp_path, tiny_model, cartoon_volume,
                                  monkeypatch):
    from napari_hdcyclegan._widgets import _workers
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    viewer.add_image(cartoon_volume(1, 64, 64, BANDS)[0], name="bscan")
    widget = DenoiseWidget(viewer)
    widget.device_combo.value = "cpu"
    widget.set_weights(tiny_model)
    run_to_end(qtbot, widget)
    assert viewer.layers["bscan_denoised"].data.shape == (64, 64)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    widget.set_weights(broken)
    viewer.layers.remove("bscan_denoised")
    errors: list[str] = []
    monkeypatch.setattr(_workers, "show_error", errors.append)
    # a broken model folder is the user's to fix: one error line, no traceback (no exception raised)
    with qtbot.capture_exceptions() as caught:
        run_to_end(qtbot, widget)
    assert not caught
    assert len(errors) == 1 and "corrupt JSON" in errors[0] and "\n" not in errors[0]
    assert "failed" in widget.status.value and "config.json" in widget.status.value
    assert "bscan_denoised" not in viewer.layers


def test_user_error_in_the_worker_is_one_line_a_bug_keeps_its_traceback(qtbot, setup, monkeypatch):
    from napari_hdcyclegan._widgets import _workers, denoise

    viewer, layer, widget = setup
    errors: list[str] = []
    monkeypatch.setattr(_workers, "show_error", errors.append)
    widget.layer_combo.value = viewer.add_image(np.zeros((8, 8), np.uint8), name="thumb")
    with qtbot.capture_exceptions() as caught:  # too small for the network: an InputError
        run_to_end(qtbot, widget)
    assert not caught and len(errors) == 1 and "at least 9x9" in errors[0]
    assert "thumb_denoised" not in viewer.layers and "at least 9x9" in widget.status.value

    def broken(*args, **kwargs):
        raise KeyError("a bug")
        yield  # a generator, like the real worker

    monkeypatch.setattr(denoise, "denoise_volume", broken)
    errors.clear()
    with qtbot.capture_exceptions() as caught:
        run_to_end(qtbot, widget)
    assert any(isinstance(exc, KeyError) for _, exc, _ in caught) and not errors


def test_weights_combo_keeps_its_width_and_shows_the_whole_label_in_its_tooltip(qtbot, setup):
    viewer, layer, widget = setup
    combo = widget.weights_combo.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    longest = max(combo.fontMetrics().horizontalAdvance(t) for t in labels)
    assert longest > 400  # "auto: by noise level and texture (...)" and the tiny model's folder path
    assert combo.sizeHint().width() < longest  # sized to its minimum length, not to the longest label
    assert combo.toolTip().startswith(combo.currentText()) and str(widget.weights_combo.value) in combo.toolTip()
    widget.weights_combo.value = "auto"
    assert combo.toolTip().startswith(combo.currentText() + "\n") and "picks a shipped model" in combo.toolTip()


def test_each_model_says_what_it_is_for(qtbot, setup):
    from qtpy.QtCore import Qt

    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir

    viewer, layer, widget = setup
    combo = widget.weights_combo.native
    hover = {combo.itemData(i): combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())}
    for name in ("spectralis-real", "bioptigen-duke", "bioptigen-averaged", "spectralis-sim"):
        assert hover[name] == read_config(resolve_model_dir(name)).description and "b-scans" in hover[name]
    assert "Bioptigen" in hover["bioptigen-duke"] and "Spectralis" in hover["spectralis-real"]
    widget.weights_combo.value = "bioptigen-duke"
    assert combo.toolTip() == f"{combo.currentText()}\n{hover['bioptigen-duke']}"
    widget.weights_combo.reset_choices()  # what exporting or browsing a model does: the items are made anew
    assert combo.itemData(combo.findData("spectralis-real"), Qt.ItemDataRole.ToolTipRole) == hover["spectralis-real"]


def test_weights_choices_offer_auto_first():
    from napari_hdcyclegan._widgets._common import BROWSE, weights_choices
    from napari_hdcyclegan.engine import DEFAULT_MODEL
    from napari_hdcyclegan.model.checkpoint import shipped_models

    choices = weights_choices(["/some/dir"])
    assert choices[-1][1] == BROWSE
    assert ("dir (/some/dir)", "/some/dir") in choices
    labels = {value: label for label, value in choices}
    assert choices[0][1] == DEFAULT_MODEL == "auto"  # the default comes first
    assert all(name in labels for name in shipped_models())
    assert "noise level" in labels[DEFAULT_MODEL]


def test_weights_choices_label_untrained_fallback_when_nothing_ships(monkeypatch):
    from napari_hdcyclegan._widgets._common import weights_choices
    from napari_hdcyclegan.model import checkpoint

    monkeypatch.setattr(checkpoint, "shipped_models", lambda: [])
    label, value = weights_choices()[0]
    assert value == "auto" and "UNTRAINED" in label


def test_residual_is_a_translucent_overlay_centred_on_zero(qtbot, setup):
    viewer, layer, widget = setup
    run_to_end(qtbot, widget)
    residual = viewer.layers["oct_residual"]
    assert residual.blending == "translucent" and residual.opacity < 1
    lo, hi = residual.contrast_limits
    assert lo == pytest.approx(-hi)
    rgba = residual.colormap.map(np.array([0.0, 0.5, 1.0]))
    assert rgba[1, 3] == pytest.approx(0.0)  # residual 0: fully clear, the b-scan shows through
    assert rgba[0, 3] == pytest.approx(1.0) and rgba[2, 3] == pytest.approx(1.0)
    assert rgba[0, 2] > rgba[0, 0] and rgba[2, 0] > rgba[2, 2]  # blue below 0, red above
    # a layer beneath stays visible where the residual is small: the drawn alpha there is ~0
    residual.visible = True
    small = np.abs(residual.data) < 0.05 * hi
    assert small.any()
    alpha = residual.colormap.map((residual.data[small] - lo) / (hi - lo))[:, 3]
    assert alpha.max() < 0.1


def test_lateral_smoothing_choice_reaches_run_preview_and_provenance(qtbot, setup):
    viewer, layer, widget = setup
    assert widget.lateral_combo.value == "model's own"
    lateral = lambda x: np.abs(np.diff(np.asarray(x, float), axis=-1)).mean()  # noqa: E731
    found = {}
    for choice in ("off", "3 px"):
        widget.lateral_combo.value = choice
        run_to_end(qtbot, widget)
        out = viewer.layers["oct_denoised"]
        found[choice] = (lateral(out.data), out.metadata["provenance"]["config"]["lateral_sigma"])
    assert found["off"][1] == 0.0 and found["3 px"][1] == 3.0
    assert found["3 px"][0] < 0.7 * found["off"][0]
    viewer.dims.set_current_step(0, 2)
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: "oct_preview" in viewer.layers, timeout=TIMEOUT_MS)
    assert viewer.layers["oct_preview"].metadata["provenance"]["config"]["lateral_sigma"] == 3.0


def test_adapt_steps_adapt_the_model_first_and_say_so(qtbot, setup):
    from napari_hdcyclegan import engine

    viewer, layer, widget = setup
    assert widget.adapt_spin.value == 0  # off unless asked for
    resident = engine.get_denoiser(str(widget.weights_combo.value), "cpu")
    before = {k: v.clone() for k, v in resident.generator.state_dict().items()}
    widget.adapt_spin.value = 3
    run_to_end(qtbot, widget)
    out = viewer.layers["oct_denoised"]
    record = out.metadata["provenance"]["adaptation"]
    assert record["steps"] == 3 and isinstance(record["kept"], bool)
    assert out.metadata["provenance"]["model"] == ("tiny+adapted" if record["kept"] else "tiny")
    assert "adapted tiny to this scan in 3 steps" in widget.status.value
    assert widget.progress_bar.value == layer.data.shape[0]  # the b-scan stage ends the run
    # the shared resident model is left as it was
    assert all((v == before[k]).all() for k, v in resident.generator.state_dict().items())


def test_the_automatic_choice_reaches_the_status_line_adapting_or_not(qtbot, setup, monkeypatch):
    from napari_hdcyclegan import engine
    from napari_hdcyclegan.model.choice import ModelChoice

    viewer, layer, widget = setup
    real = engine.choose_denoiser

    def chosen(weights, device="auto", data=None):
        denoiser, _ = real(weights, device, data=data)
        return denoiser, ModelChoice(denoiser.name, 20.0, "a noisy averaged scan", 0.7)

    monkeypatch.setattr(engine, "choose_denoiser", chosen)
    run_to_end(qtbot, widget)
    assert "(auto: a noisy averaged scan)" in widget.status.value
    widget.adapt_spin.value = 2
    run_to_end(qtbot, widget)
    assert "adapted tiny to this scan in 2 steps" in widget.status.value
    assert "(auto: a noisy averaged scan)" in widget.status.value


def test_adaptation_is_scored_with_the_chosen_lateral_smoothing(qtbot, setup, monkeypatch):
    import napari_hdcyclegan.adapt as adapt

    viewer, layer, widget = setup
    seen = []
    real = adapt.iter_adapt

    def spy(denoiser, data, steps, **kw):
        seen.append(denoiser.config.lateral_sigma)
        return (yield from real(denoiser, data, steps, **kw))

    monkeypatch.setattr(adapt, "iter_adapt", spy)
    widget.lateral_combo.value = "2 px"
    widget.adapt_spin.value = 2
    run_to_end(qtbot, widget)
    assert seen == [2.0]  # as the CLI: the held-out columns are scored as the output will look
    assert viewer.layers["oct_denoised"].metadata["provenance"]["config"]["lateral_sigma"] == 2.0


def test_input_removed_during_a_run_says_so_in_the_status_line(qtbot, setup):
    viewer, layer, widget = setup
    assert widget.run() is not None
    viewer.layers.remove(layer)  # before the worker's result reaches the main thread
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert len(viewer.layers) == 0
    assert widget.status.value == "Denoise: layer 'oct' was removed during the run; result dropped"


def test_no_usable_layer_says_which_layers_cannot_be_used(make_napari_viewer, monkeypatch):
    from napari_hdcyclegan._widgets import denoise

    viewer = make_napari_viewer()
    shown: list[str] = []
    monkeypatch.setattr(denoise, "show_info", shown.append)
    widget = denoise.DenoiseWidget(viewer)
    assert widget.run() is None and shown == ["Denoise: add or open an image layer first"]
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="export", rgb=True)
    viewer.add_labels(np.zeros((32, 32), np.uint8), name="mask")
    viewer.add_shapes(name="lines")
    shown.clear()
    assert widget.layer_combo.value is None and widget.run() is None
    assert len(shown) == 1 and "'export' is RGB" in shown[0]
    assert "'mask' is a Labels layer" in shown[0] and "'lines' is a Shapes layer" in shown[0]


def test_output_keeps_the_inputs_intensity_domain_and_scan_fields_through_the_writer(qtbot, setup, tmp_path):
    from napari_hdcyclegan._reader import read_layers
    from napari_hdcyclegan._writer import write_tiff

    viewer, layer, widget = setup
    vendor = {"intensity_transform": "log_display", "source_intensity": "float32 linear", "laterality": "OD",
              "scan_pattern": "circle", "path": "/scans/valid.vol", "format": "heidelberg_vol"}
    log = viewer.add_image((layer.data / 255.0).astype(np.float32), name="vol", scale=SCALE, units="um",
                           contrast_limits=(0.0, 1.0), metadata=vendor)
    widget.layer_combo.value = log
    run_to_end(qtbot, widget)
    out = viewer.layers["vol_denoised"]
    for key in ("intensity_transform", "source_intensity", "laterality", "scan_pattern"):
        assert out.metadata[key] == vendor[key]
    assert out.metadata["source_layer"] == "vol" and out.metadata["provenance"]
    assert "intensity_transform" not in viewer.layers["vol_residual"].metadata  # a difference, not log display
    # saved with the plugin's writer and opened again: read as the input was (log display, limits 0..1)
    data, attributes, _ = out.as_layer_data_tuple()
    [path] = write_tiff(str(tmp_path / "out.tif"), data, attributes)
    [(back, kwargs, kind)] = read_layers(path)
    assert kind == "image" and kwargs["contrast_limits"] == (0.0, 1.0)
    assert kwargs["metadata"]["laterality"] == "OD" and kwargs["metadata"]["scan_pattern"] == "circle"


def test_an_all_nan_bscan_is_named_and_the_residual_stays_viewable(qtbot, setup):
    """An all-NaN b-scan made the residual's contrast limits NaN, and nothing said why it stayed blank."""
    viewer, layer, widget = setup
    data = layer.data.astype(np.float32)
    data[2] = np.nan
    layer.data = data
    run_to_end(qtbot, widget)
    out = viewer.layers["oct_denoised"].data
    assert np.isnan(out[2]).all() and np.isfinite(out[[0, 1, 3, 4, 5]]).all()
    lo, hi = viewer.layers["oct_residual"].contrast_limits
    assert np.isfinite(hi) and hi > 0 and lo == pytest.approx(-hi)
    assert "1 b-scan(s) without a finite pixel left as they are (first: 2)" in widget.status.value



def test_auto_refuses_a_no_data_marker_before_choosing_a_model(monkeypatch):
    """The Denoise worker under auto chose and loaded a model (and adapted it) before refusing a marker
    in a b-scan the choice did not score."""
    import napari_hdcyclegan.engine as engine
    from napari_hdcyclegan._widgets.denoise import denoise_volume
    from napari_hdcyclegan.errors import InputError
    from napari_hdcyclegan.progress import drive

    monkeypatch.setattr(engine, "choose_denoiser", lambda *a, **k: pytest.fail("a model was chosen"))
    data = np.random.default_rng(0).uniform(0, 200, (12, 24, 32)).astype(np.float32)
    data[7, 4, 5] = 3e38
    with pytest.raises(InputError, match=r"^b-scan 7: values span"):
        drive(denoise_volume(data, "auto", "cpu", 2, residual=False, adapt_steps=5))


def test_linear_intensities_are_said_to_need_log_compression(qtbot, setup, monkeypatch, linear_scan):
    from napari_hdcyclegan._widgets import denoise

    said: list[str] = []
    monkeypatch.setattr(denoise, "show_info", said.append)
    viewer, layer, widget = setup
    layer.data = linear_scan((6, 64, 64))
    run_to_end(qtbot, widget)
    assert "the input looks like linear intensities" in widget.status.value
    assert any("oct looks like linear intensities" in s and "log-compress" in s for s in said)
    layer.data = np.log1p(layer.data * 1000).astype(np.float32)  # the same scan log-compressed: nothing said
    said.clear()
    run_to_end(qtbot, widget)
    assert "linear" not in widget.status.value and not said


class CountingVolume:
    """An array-like volume that records which b-scans are read and on which thread (as a lazily
    loaded stack reads them from disk)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.reads = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        self.reads.append((key, threading.current_thread() is threading.main_thread()))
        return self.data[key]

    def __array__(self, dtype=None, copy=None):
        self.reads.append(("all", threading.current_thread() is threading.main_thread()))
        return self.data if dtype is None else self.data.astype(dtype)


def test_a_lazy_volume_is_read_one_b_scan_for_a_preview_and_whole_only_in_the_worker(qtbot, setup, cartoon_volume):
    viewer, _, widget = setup
    lazy = CountingVolume(cartoon_volume(6, 64, 64, BANDS))
    layer = viewer.add_image(lazy, name="lazy")
    widget.layer_combo.value = layer
    viewer.dims.set_current_step(0, 2)
    lazy.reads.clear()
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: "lazy_preview" in viewer.layers, timeout=TIMEOUT_MS)
    assert ("all", True) not in lazy.reads and (2, True) in lazy.reads  # b-scan 2 only, not the volume
    widget.preview_check.value = False
    lazy.reads.clear()
    run_to_end(qtbot, widget)
    assert ("all", False) in lazy.reads and ("all", True) not in lazy.reads  # read by the worker
    assert viewer.layers["lazy_denoised"].data.shape == (6, 64, 64)


def test_a_rerun_without_the_residual_removes_the_earlier_one(qtbot, setup):
    viewer, layer, widget = setup
    widget.residual_check.value = True
    run_to_end(qtbot, widget)
    assert "oct_residual" in viewer.layers
    other = viewer.add_image(np.zeros((6, 64, 64), np.float32), name="other_residual")  # not this input's
    widget.residual_check.value = False
    run_to_end(qtbot, widget)
    assert "oct_denoised" in viewer.layers and "oct_residual" not in viewer.layers  # it no longer matched
    assert other in viewer.layers


def _same_place(source, derived, source_index: int = 0, derived_index: int = 0) -> None:
    """Pixels of b-scan ``source_index`` of ``source`` and ``derived_index`` of ``derived`` share world points."""
    for y, x in ((0, 0), (17, 40), (63, 63)):
        np.testing.assert_allclose(derived.data_to_world((derived_index, y, x)),
                                   source.data_to_world((source_index, y, x)), atol=1e-6)


def test_results_of_a_rotated_sheared_layer_are_drawn_over_it(qtbot, setup, cartoon_volume):
    viewer, _, widget = setup
    affine = np.array([[1.0, 0, 0, 5], [0, 0.9, 0.1, 0], [0, 0, 1, 3], [0, 0, 0, 1]])
    layer = viewer.add_image(cartoon_volume(6, 64, 64, BANDS), name="turned", scale=SCALE, translate=TRANSLATE,
                             rotate=15, shear=[0.1, 0.2, 0.05], affine=affine)
    from napari_hdcyclegan._widgets._aspect import display_aspect

    display_aspect(viewer).set_mode("axial ×2")  # the display stretch, on top of the layer's own affine
    widget.layer_combo.value = layer
    widget.residual_check.value = True
    run_to_end(qtbot, widget)
    for name in ("turned_denoised", "turned_residual"):
        _same_place(layer, viewer.layers[name], 4, 4)
    viewer.dims.set_current_step(0, layer.data_to_world((3, 0, 0))[0])
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: "turned_preview" in viewer.layers, timeout=TIMEOUT_MS)
    preview = viewer.layers["turned_preview"]
    _same_place(layer, preview, preview.metadata["bscan"], 0)


def test_a_preview_maps_its_b_scan_by_the_volumes_levels(qtbot, make_napari_viewer, tmp_path, cartoon_volume):
    """12-bit data in uint16 maps by the volume's bit depth: a dim b-scan (10 bits alone) previews as
    the volume run denoises it; a lazy volume is read for its levels once, in the worker."""
    import torch

    from napari_hdcyclegan._widgets.denoise import DenoiseWidget
    from napari_hdcyclegan.model import Generator, ModelConfig, save_model

    torch.manual_seed(0)
    model = save_model(tmp_path / "dtype", {"G_L": Generator(width=4)},
                       ModelConfig(generator_width=4, name="dtype", trained=True, normalisation={"method": "dtype"}))
    volume = cartoon_volume(4, 64, 64, BANDS).astype(np.uint16) * 16
    volume[0] //= 4
    assert volume.max() >= 2048 and volume[0].max() < 1024
    lazy = CountingVolume(volume)
    viewer = make_napari_viewer()
    layer = viewer.add_image(lazy, name="u16")
    widget = DenoiseWidget(viewer)
    widget.set_weights(model)
    widget.device_combo.value, widget.layer_combo.value = "cpu", layer
    run_to_end(qtbot, widget)
    full = np.array(viewer.layers["u16_denoised"].data)
    viewer.dims.set_current_step(0, 0)
    lazy.reads.clear()
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: "u16_preview" in viewer.layers, timeout=TIMEOUT_MS)
    np.testing.assert_allclose(viewer.layers["u16_preview"].data[0].astype(int), full[0].astype(int), atol=1)
    assert (slice(0, 4), False) in lazy.reads and ("all", True) not in lazy.reads  # levels: read in the worker
    lazy.reads.clear()
    viewer.dims.set_current_step(0, 1)
    qtbot.waitUntil(lambda: viewer.layers["u16_preview"].metadata["bscan"] == 1, timeout=TIMEOUT_MS)
    assert lazy.reads and all(key == 1 or key[0] == slice(1, 2) for key, _ in lazy.reads)  # levels kept: b-scan 1
    np.testing.assert_allclose(viewer.layers["u16_preview"].data[0].astype(int), full[1].astype(int), atol=1)


def test_auto_chooses_for_the_volume_in_a_preview_and_a_current_b_scan_comparison(qtbot, setup, monkeypatch):
    """The automatic choice measures the volume (as the run does), not the one b-scan shown, and a
    preview measures it once."""
    from napari_hdcyclegan import engine
    from napari_hdcyclegan._widgets.compare import compute_comparison
    from napari_hdcyclegan.model.choice import ModelChoice
    from napari_hdcyclegan.progress import drive

    viewer, layer, widget = setup
    tiny = str(widget.weights_combo.value)
    measured = []

    def resolve(weights, data):
        if data is None:  # loading without data (a warm-up) measures nothing
            return tiny, None
        measured.append(np.shape(data))
        return tiny, ModelChoice(tiny, 25.0, "measured in the test", 0.7)

    monkeypatch.setattr(engine, "resolve_auto", resolve)
    widget.weights_combo.value = "auto"
    viewer.dims.set_current_step(0, 2)
    widget.preview_check.value = True
    qtbot.waitUntil(lambda: "oct_preview" in viewer.layers, timeout=TIMEOUT_MS)
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: viewer.layers["oct_preview"].metadata["bscan"] == 3, timeout=TIMEOUT_MS)
    assert measured == [(6, 64, 64)]  # the second preview kept the volume's choice
    assert "measured in the test" in str(viewer.layers["oct_preview"].metadata["provenance"])
    drive(compute_comparison(layer.data[2:3], (), True, "auto", "cpu", layer.data))
    assert measured == [(6, 64, 64), (6, 64, 64)]


def test_a_volume_replaced_during_a_preview_is_measured_again(qtbot, make_napari_viewer, tmp_path, cartoon_volume):
    """The levels a preview measured belong to the data it read: replaced meanwhile, the new data is
    measured for itself (the old 12-bit levels were kept for a 10-bit volume)."""
    import torch

    from napari_hdcyclegan._widgets.denoise import DenoiseWidget
    from napari_hdcyclegan.engine import get_denoiser
    from napari_hdcyclegan.model import Generator, ModelConfig, save_model

    torch.manual_seed(0)
    model = save_model(tmp_path / "dtype", {"G_L": Generator(width=4)},
                       ModelConfig(generator_width=4, name="dtype", trained=True, normalisation={"method": "dtype"}))
    twelve = cartoon_volume(3, 64, 64, BANDS).astype(np.uint16) * 16
    ten = twelve // 4
    viewer = make_napari_viewer()
    layer = viewer.add_image(twelve, name="u16")
    widget = DenoiseWidget(viewer)
    widget.set_weights(model)
    widget.device_combo.value, widget.layer_combo.value = "cpu", layer
    viewer.dims.set_current_step(0, 1)
    widget.preview_check.value = True
    widget._preview_timer.stop()
    assert widget.start_preview() is not None
    layer.data = ten  # before the worker's result reaches the main thread
    qtbot.waitUntil(lambda: widget.preview_worker is None, timeout=TIMEOUT_MS)
    widget._preview_timer.stop()
    assert widget.start_preview() is not None
    qtbot.waitUntil(lambda: widget.preview_worker is None and "u16_preview" in viewer.layers, timeout=TIMEOUT_MS)
    run = get_denoiser(str(model), "cpu").denoise(ten)
    np.testing.assert_allclose(viewer.layers["u16_preview"].data[0].astype(int), run[1].astype(int), atol=1)
