"""FeatureExplorerWidget end to end with a tiny model: map layer geometry, channels, gallery, export."""

from __future__ import annotations

import numpy as np
import pytest

SCALE = (60.0, 3.87, 11.45)
TRANSLATE = (120.0, 5.0, 10.0)
TIMEOUT_MS = 60_000
#: Two bright bands (rows, gain) of the speckled (4, 64, 72) uint8 cartoon retina.
BANDS = ((16, 22, 110.0), (40, 46, 150.0))


@pytest.fixture
def setup(make_napari_viewer, tiny_model, cartoon_volume):
    from napari_hdcyclegan._widgets.features import FeatureExplorerWidget

    viewer = make_napari_viewer()
    layer = viewer.add_image(cartoon_volume(4, 64, 72, BANDS), name="oct", scale=SCALE,
                             translate=TRANSLATE, units="um", axis_labels=("b-scan", "depth", "lateral"))
    widget = FeatureExplorerWidget(viewer)
    widget.set_weights(tiny_model)
    return viewer, layer, widget, tiny_model


def wait_maps(qtbot, widget, stage: str, index: int | None = None) -> None:
    """Trigger a computation and wait until the cache holds ``stage`` of b-scan ``index``
    (default: the b-scan under the dims slider)."""
    from napari_hdcyclegan._widgets._common import current_bscan

    if index is None:
        index = current_bscan(widget.viewer, widget.layer_combo.value)
    widget.refresh()
    qtbot.waitUntil(lambda: widget._cache is not None and widget._cache["stage"] == stage
                    and widget._cache["index"] == index and widget.worker is None, timeout=TIMEOUT_MS)


def test_map_layer_geometry_and_values(qtbot, setup):
    viewer, layer, widget, model_dir = setup
    viewer.dims.set_current_step(0, 2)
    wait_maps(qtbot, widget, "init", 2)
    fmap = viewer.layers["oct_fmap"]
    assert fmap.data.shape == (1, 64, 72)
    np.testing.assert_allclose(fmap.scale, SCALE)
    np.testing.assert_allclose(fmap.translate, (TRANSLATE[0] + 2 * SCALE[0], *TRANSLATE[1:]))
    assert tuple(fmap.axis_labels) == ("b-scan", "depth", "lateral")
    assert tuple(fmap.units) == tuple(layer.units)
    assert fmap.metadata["stage"] == "init" and fmap.metadata["channel"] == 0
    assert fmap.metadata["bscan"] == 2 and fmap.metadata["provenance"]["model"]
    from napari_hdcyclegan.engine import get_denoiser

    expected = get_denoiser(str(model_dir)).feature_maps(layer.data[2], "init", [0])[0]
    np.testing.assert_allclose(fmap.data[0], expected, rtol=1e-5, atol=1e-6)


def test_stage_channels_steps_style(qtbot, setup):
    viewer, layer, widget, _ = setup
    widget.stage_combo.value = "down1"
    wait_maps(qtbot, widget, "down1")
    assert widget.channel_slider.max == 7  # width 4 -> down1 has 8 channels
    widget.next_button.changed.emit(True)
    assert widget.channel_slider.value == 1
    assert viewer.layers["oct_fmap"].metadata["channel"] == 1
    np.testing.assert_allclose(viewer.layers["oct_fmap"].data[0], widget._cache["maps"][1])
    widget.prev_button.changed.emit(True)
    widget.prev_button.changed.emit(True)
    assert widget.channel_slider.value == 7  # wraps around
    widget.cmap_combo.value = "viridis"
    widget.opacity_slider.value = 0.3
    assert viewer.layers["oct_fmap"].colormap.name == "viridis"
    assert viewer.layers["oct_fmap"].opacity == pytest.approx(0.3)


def test_gallery_and_export(qtbot, setup, tmp_path):
    import tifffile

    viewer, layer, widget, _ = setup
    wait_maps(qtbot, widget, "init")
    assert widget.add_gallery() is not None  # tiled in a worker
    qtbot.waitUntil(lambda: widget.gallery_worker is None, timeout=TIMEOUT_MS)
    gal = viewer.layers["oct_fmap_gallery"]
    assert gal.name == "oct_fmap_gallery" and gal.ndim == 3
    assert gal.data.shape[0] == 1 and gal.data.shape[1] > 64 and gal.data.shape[2] > 72  # 4 tiles
    np.testing.assert_allclose(gal.scale, SCALE)
    assert 0.0 <= gal.data.min() and gal.data.max() <= 1.0
    path = widget.export(tmp_path / "map.tif")
    back = tifffile.imread(path)
    assert back.shape == (64, 72)
    np.testing.assert_allclose(back, widget._cache["maps"][0], rtol=1e-6)


def test_closed_dock_stops_adding_maps(make_napari_viewer, qtbot, tiny_model, cartoon_volume):
    """Closing the dock (what its x button does) disconnects the explorer from the viewer."""
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-hdcyclegan", "Feature-map explorer")
    widget.set_weights(tiny_model)
    first = viewer.add_image(cartoon_volume(2, 32, 40, BANDS), name="first")
    qtbot.waitUntil(lambda: "first_fmap" in viewer.layers and widget.worker is None,
                    timeout=TIMEOUT_MS)  # open, it follows new layers
    viewer.layers.remove(first)
    viewer.layers.remove("first_fmap")
    viewer.window.remove_dock_widget(dock)
    viewer.add_image(cartoon_volume(2, 32, 40, BANDS), name="second")
    viewer.dims.set_current_step(0, 1)
    qtbot.wait(800)  # several debounce periods
    assert widget.worker is None
    assert not [lay.name for lay in viewer.layers if lay.name.endswith("_fmap")]
    assert widget.closed


def test_input_removed_while_computing_says_so(qtbot, setup):
    viewer, layer, widget, model_dir = setup
    widget._maps.timer.stop()
    assert widget.refresh() is not None
    viewer.layers.remove(layer)  # before the worker's maps reach the main thread
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.status.value == "Feature maps: layer 'oct' was removed; its maps were dropped"
    assert len(viewer.layers) == 0


def test_gallery_is_tiled_off_the_main_thread(qtbot, setup, monkeypatch):
    import threading

    from napari_hdcyclegan._widgets import features

    viewer, layer, widget, _ = setup
    wait_maps(qtbot, widget, "init")
    threads = []
    real = features.gallery

    def recording(maps):
        threads.append(threading.current_thread())
        return real(maps)

    monkeypatch.setattr(features, "gallery", recording)
    widget.add_gallery()  # 128 full-size res maps took 2 s here: napari froze
    qtbot.waitUntil(lambda: "oct_fmap_gallery" in viewer.layers, timeout=TIMEOUT_MS)
    assert threads and threads[0] is not threading.main_thread()
    assert viewer.layers["oct_fmap_gallery"].metadata["stage"] == "init"
    assert "Gallery of" in widget.status.value


def test_maps_of_a_b_scan_use_the_volumes_input_mapping(tmp_path, cartoon_volume, release_engine):
    """12-bit data in uint16: a dim b-scan's maps are those of the volume run's input, not of the
    b-scan mapped by its own bit depth."""
    import torch

    from napari_hdcyclegan._widgets.features import compute_maps
    from napari_hdcyclegan.engine import get_denoiser
    from napari_hdcyclegan.model import Generator, ModelConfig, save_model

    torch.manual_seed(0)
    model = save_model(tmp_path / "dtype", {"G_L": Generator(width=4)},
                       ModelConfig(generator_width=4, name="dtype", trained=True, normalisation={"method": "dtype"}))
    volume = cartoon_volume(3, 64, 64, ((24, 42, 110.0),)).astype(np.uint16) * 16
    volume[0] //= 4
    den = get_denoiser(str(model))
    result = compute_maps(volume[0], str(model), "init", volume)
    np.testing.assert_allclose(result["maps"], den.feature_maps(volume[0], "init", levels=(0.0, 4095.0)), atol=1e-6)
    assert not np.allclose(result["maps"], den.feature_maps(volume[0], "init"), atol=1e-3)  # its own 10 bits
    assert result["known"]  # what was measured, for the next request


def test_an_export_named_without_a_suffix_gets_tif(qtbot, setup, tmp_path, monkeypatch):
    """Qt's own save dialog hands back the name as typed; the TIFF writer refuses names that are not .tif."""
    from qtpy.QtWidgets import QFileDialog

    viewer, layer, widget, _ = setup
    wait_maps(qtbot, widget, "init")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "map"), ""))
    widget._export_dialog()
    assert (tmp_path / "map.tif").is_file() and widget.status.value == f"Exported {tmp_path / 'map.tif'}"
