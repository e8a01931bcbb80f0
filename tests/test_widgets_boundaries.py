"""BoundaryWidget end to end with a tiny model: overlay accuracy on a simulated volume, layer
geometry, thickness, CSV, cancel, and the automatic channel choice."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("napari")

SCALE = (120.0, 3.87, 11.45)
TRANSLATE = (0.0, 5.0, 10.0)
TIMEOUT_MS = 90_000
SHAPE = (248, 256)
#: Stated accuracy of the overlay on simulated HN b-scans (mean abs. error, px, ILM and RPE).
MAX_MAE_PX = 2.5


def tiny_generator():
    """Width-4 generator, random except init channel 0 = a 7x7 Gaussian blur of the input: a
    channel that follows the bright bands, as the trained model's boundary channel does."""
    from napari_hdcyclegan.model import Generator

    torch.manual_seed(0)
    gen = Generator(width=4)
    with torch.no_grad():
        k = torch.exp(-0.5 * ((torch.arange(7.0) - 3) / 1.5) ** 2)
        k = k[:, None] * k[None]
        gen.init[0].weight[0, 0] = k / k.sum()
        gen.init[0].bias[0] = 0.0
    return gen


def save_tiny(path, boundary_channel=None):
    from napari_hdcyclegan.model import ModelConfig, save_model

    config = ModelConfig(generator_width=4, discriminator_width=4, discriminator_levels=3,
                         name="tiny", trained=False, boundary_channel=boundary_channel)
    return save_model(path, {"G_L": tiny_generator()}, config)


@pytest.fixture(scope="module")
def sim():
    from napari_hdcyclegan.simulate import simulate_volume

    return simulate_volume(n_bscans=2, seed=3, shape=SHAPE)


@pytest.fixture
def viewer_widget(make_napari_viewer):
    from napari_hdcyclegan._widgets.boundaries import BoundaryWidget

    viewer = make_napari_viewer()
    widget = BoundaryWidget(viewer)
    widget.device_combo.value = "cpu"
    return viewer, widget


def run_to_end(qtbot, widget):
    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def test_overlay_matches_simulator_truth(qtbot, viewer_widget, sim, tmp_path):
    viewer, widget = viewer_widget
    layer = viewer.add_image(sim.hn, name="oct", scale=SCALE, translate=TRANSLATE, units="um",
                             axis_labels=("b-scan", "depth", "lateral"))
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = layer
    run_to_end(qtbot, widget)
    assert widget.result is not None, widget.status.value
    assert (widget.stage_combo.value, widget.channel_spin.value) == ("init", 0)
    for name, color in (("ILM", "#F668C2"), ("RPE", "#97A431")):
        shapes = viewer.layers[f"oct {name} (detected)"]
        assert shapes.ndim == 3 and len(shapes.data) >= 2
        assert all(kind == "path" for kind in shapes.shape_type)
        np.testing.assert_allclose(shapes.scale, SCALE)
        np.testing.assert_allclose(shapes.translate, TRANSLATE)
        assert tuple(shapes.axis_labels) == ("b-scan", "depth", "lateral")
        np.testing.assert_allclose(shapes.edge_color[0][:3], np.array(
            [int(color[i:i + 2], 16) for i in (1, 3, 5)]) / 255, atol=1e-3)
        heights = shapes.metadata["heights"]
        assert heights.shape == (2, SHAPE[1])
        truth = sim.boundaries[name]
        ok = np.isfinite(heights)
        assert ok.mean() > 0.8
        mae = np.mean(np.abs(heights[ok] - truth[ok]))
        assert mae < MAX_MAE_PX, (name, mae)
        # the path vertices are these heights (bscan, row, col) in data coordinates
        first = shapes.data[0]
        b, cols = int(first[0, 0]), first[:, 2].astype(int)
        np.testing.assert_allclose(first[:, 1], heights[b, cols])
    ilm, rpe = (viewer.layers[f"oct {n} (detected)"].metadata["heights"] for n in ("ILM", "RPE"))
    assert np.all(ilm[np.isfinite(ilm) & np.isfinite(rpe)] < rpe[np.isfinite(ilm) & np.isfinite(rpe)])
    thick = viewer.layers["oct_thickness"]
    assert thick.data.shape == (2, 1, SHAPE[1])
    np.testing.assert_allclose(thick.scale, (SCALE[0], SCALE[1] * SHAPE[0], SCALE[2]))
    np.testing.assert_allclose(thick.data[:, 0], (rpe - ilm) * SCALE[1], rtol=1e-5)
    assert thick.metadata["unit"] == "µm"
    assert len(widget.axes.lines) == 1  # profile of the current b-scan
    path = widget.export_csv(tmp_path / "b.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "bscan,ascan,ILM,RPE,thickness_um" and len(lines) == 1 + 2 * SHAPE[1]


def test_cancel_keeps_previous_result(qtbot, viewer_widget, sim, tmp_path):
    viewer, widget = viewer_widget
    small = viewer.add_image(sim.hn[:, ::2, ::2], name="small", scale=SCALE, units="um")
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = small
    run_to_end(qtbot, widget)
    before = viewer.layers["small ILM (detected)"].metadata["heights"].copy()
    big = np.repeat(sim.hn[:, ::2, ::2], 20, axis=0)  # 40 b-scans: cannot finish before cancel
    small.data = big
    worker = widget.run()
    assert widget.run() is None  # one run at a time (WorkerRunner's guard)
    widget.cancel()
    assert widget.status.value == widget.cancelling_message
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.progress_bar.value < big.shape[0]
    assert widget.status.value == widget.aborted_message
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    np.testing.assert_array_equal(viewer.layers["small ILM (detected)"].metadata["heights"], before)
    assert worker.abort_requested


def test_error_reported_like_the_other_widgets(qtbot, viewer_widget, sim, tmp_path, monkeypatch):
    from napari_hdcyclegan._widgets import _workers

    viewer, widget = viewer_widget
    viewer.add_image(sim.hn[0], name="b", scale=SCALE[1:], units="um")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    widget.set_weights(broken)
    errors: list[str] = []
    monkeypatch.setattr(_workers, "show_error", errors.append)
    # a broken model folder is the user's to fix: one error line, no traceback (no exception raised)
    with qtbot.capture_exceptions() as caught:
        run_to_end(qtbot, widget)
    assert not caught and len(errors) == 1 and "corrupt JSON" in errors[0]
    assert widget.status.value.startswith("Boundaries failed:") and "config.json" in widget.status.value
    assert widget.result is None and not widget.export_button.enabled
    assert not any(layer.name.endswith("(detected)") for layer in viewer.layers)
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_auto_channel_calibrates_on_single_bscan(qtbot, viewer_widget, sim, tmp_path):
    from napari_hdcyclegan.boundaries import EARLY_STAGES

    viewer, widget = viewer_widget
    layer = viewer.add_image(sim.hn[0], name="b", scale=SCALE[1:], units="um")
    widget.set_weights(save_tiny(tmp_path / "tiny"))  # no boundary_channel in config.json
    widget.calibration = {"n": 1, "seed": 0, "shape": SHAPE}
    widget.layer_combo.value = layer
    run_to_end(qtbot, widget)
    assert widget.result is not None, widget.status.value
    assert widget.result["stage"] in EARLY_STAGES and "calibrate" in widget.result["how"]
    assert viewer.layers["b ILM (detected)"].ndim == 2
    assert viewer.layers["b ILM (detected)"].metadata["heights"].shape == (SHAPE[1],)
    assert viewer.layers["b_thickness"].data.shape == (1, SHAPE[1])
    # the user can override the automatic choice
    widget.set_channel("down1", 2)
    run_to_end(qtbot, widget)
    assert (widget.result["stage"], widget.result["channel"]) == ("down1", 2)
    assert viewer.layers["b RPE (detected)"].metadata["channel"] == 2


def test_vendor_lines_kept_and_compared(qtbot, viewer_widget, sim, tmp_path):
    from napari_hdcyclegan._reader import boundary_layer

    viewer, widget = viewer_widget
    layer = viewer.add_image(sim.hn, name="scan", scale=SCALE, units="um")
    vendor = {k: np.asarray(sim.boundaries[k], dtype=np.float64) + 1.0 for k in ("ILM", "RPE")}
    for name, rows in vendor.items():  # the file's own lines, as the reader names them
        data, kwargs, kind = boundary_layer(rows, f"scan_{name}", name, SCALE, ("um",) * 3,
                                            ("b-scan", "depth", "lateral"), 3, "scan.vol")
        viewer.add_shapes(data, **kwargs)
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = layer
    run_to_end(qtbot, widget)
    assert widget.result is not None, widget.status.value
    for name in ("ILM", "RPE"):
        np.testing.assert_allclose(viewer.layers[f"scan_{name}"].metadata["heights"], vendor[name], rtol=1e-6)
        assert f"scan {name} (detected)" in viewer.layers
        assert viewer.layers[f"scan {name} (detected)"].metadata["doubtful"].shape == (2, SHAPE[1])
    assert "mean diff. to the file's lines: ILM" in widget.status.value
    # stage one alone (the paper's skeleton) is a switch away
    widget.skeleton_check.value = True
    run_to_end(qtbot, widget)
    assert widget.result["refine"] is False and "skeleton only" in widget.status.value


def test_inner_layers_added_in_order_and_removed_by_a_plain_rerun(qtbot, viewer_widget, sim, tmp_path):
    from napari_hdcyclegan.boundaries import INNER_NAMES, LAYER_BOUNDARIES

    viewer, widget = viewer_widget
    viewer.add_image(sim.hn, name="oct", scale=SCALE, units="um")
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.inner_check.value = True
    run_to_end(qtbot, widget)
    rows = [viewer.layers[f"oct {n} (detected)"].metadata["heights"] for n in LAYER_BOUNDARIES]
    assert all(r.shape == sim.hn.shape[::2] for r in rows)  # (N, W)
    stacked = np.stack(rows)
    both = np.all(np.isfinite(stacked), axis=0)
    assert both.mean() > 0.5
    assert np.all(np.diff(stacked[:, both], axis=0) >= 0)  # ILM, inner lines, BM: top to bottom
    header = widget.export_csv(tmp_path / "b.csv").read_text().splitlines()[0].split(",")
    assert all(n in header for n in INNER_NAMES)
    widget.skeleton_check.value = True
    assert not widget.inner_check.enabled
    widget.skeleton_check.value = False
    widget.inner_check.value = False
    run_to_end(qtbot, widget)
    assert not any(f"oct {n} (detected)" in viewer.layers for n in INNER_NAMES)
    assert "oct ILM (detected)" in viewer.layers



def _follows(emitter, widget) -> bool:
    """Whether a method of ``widget`` is connected to the napari ``emitter`` (held as (weakref, name))."""
    return any(isinstance(cb, tuple) and cb[0]() is widget for cb in emitter.callbacks)


def test_closed_dock_stops_following_the_viewer(qtbot, viewer_widget, sim):
    """Closing the dock (what its x button does) disconnects the widget, as the other docks do."""
    viewer, widget = viewer_widget
    dock = viewer.window.add_dock_widget(widget, name="boundaries")
    viewer.add_image(sim.hn, name="first")
    assert [layer.name for layer in widget.layer_combo.choices] == ["first"]
    assert _follows(viewer.dims.events.current_step, widget)  # open, the profile follows the slider
    viewer.window.remove_dock_widget(dock)
    viewer.add_image(sim.hn, name="second")
    assert not _follows(viewer.dims.events.current_step, widget) and widget.closed
    assert [layer.name for layer in widget.layer_combo.choices] == ["first"]


def test_lines_and_thickness_of_a_rotated_layer_are_drawn_over_it(qtbot, viewer_widget, sim, tmp_path):
    viewer, widget = viewer_widget
    layer = viewer.add_image(sim.hn, name="oct", scale=SCALE, translate=TRANSLATE, rotate=20, shear=[0.1, 0, 0.2])
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = layer
    run_to_end(qtbot, widget)
    h = SHAPE[0]
    thick = viewer.layers["oct_thickness"]
    for b, col in ((0, 0), (1, 17)):  # the thickness pixel sits at mid-depth of its A-scan
        np.testing.assert_allclose(thick.data_to_world((b, 0, col)), layer.data_to_world((b, (h - 1) / 2, col)),
                                   atol=1e-6)
    shapes = viewer.layers["oct ILM (detected)"]
    vertex = shapes.data[0][3]
    np.testing.assert_allclose(shapes.data_to_world(vertex), layer.data_to_world(vertex), atol=1e-6)


def test_export_of_a_folder_stack_names_each_b_scans_file(qtbot, viewer_widget, sim, tmp_path):
    viewer, widget = viewer_widget
    layer = viewer.add_image(sim.hn, name="scans", metadata={"files": ["a.png", "b.png"]})
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = layer
    run_to_end(qtbot, widget)
    lines = widget.export_csv(tmp_path / "b.csv").read_text().splitlines()
    assert lines[0].endswith(",file") and lines[1].endswith(",a.png") and lines[-1].endswith(",b.png")


def test_line_layers_are_built_in_the_worker_and_follow_a_moved_source(qtbot, viewer_widget, sim, tmp_path,
                                                                        monkeypatch):
    """Hundreds of paths per line would hold napari's main thread: the worker builds the layers; a
    source moved or renamed during the run still gets its lines drawn over it, under its new name."""
    import threading

    import napari.layers

    viewer, widget = viewer_widget
    built_on = []
    real_shapes = napari.layers.Shapes

    class Recorded(real_shapes):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            built_on.append(threading.current_thread() is threading.main_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(napari.layers, "Shapes", Recorded)
    layer = viewer.add_image(sim.hn, name="oct", scale=SCALE, translate=TRANSLATE, units="um")
    widget.set_weights(save_tiny(tmp_path / "tiny", {"stage": "init", "channel": 0, "how": "test"}))
    widget.layer_combo.value = layer
    assert widget.run() is not None
    layer.translate = (0.0, 50.0, 100.0)
    layer.name = "moved"
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert built_on == [False, False]  # ILM and RPE, neither on the main thread
    for name in ("ILM", "RPE"):
        shapes = viewer.layers[f"moved {name} (detected)"]
        np.testing.assert_allclose(shapes.translate, (0.0, 50.0, 100.0))
        np.testing.assert_allclose(shapes.scale, SCALE)
