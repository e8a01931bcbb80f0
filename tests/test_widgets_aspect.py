"""One viewer-wide display aspect: 1:1 µm, 1:1 pixel, axial stretch; µm scale kept in the data."""

from __future__ import annotations

import numpy as np
import pytest

SCALE = (120.0, 3.87, 17.89)  # a Heidelberg .vol: 1:4.6 pixels
AXES = ("b-scan", "depth", "lateral")


def pixel_aspect(layer) -> float:
    """World height / world width of one pixel of ``layer`` (1.0: square on screen)."""
    origin = np.asarray(layer.data_to_world((0, 0, 0)))
    down = np.asarray(layer.data_to_world((0, 1, 0))) - origin
    right = np.asarray(layer.data_to_world((0, 0, 1))) - origin
    return float(np.linalg.norm(down) / np.linalg.norm(right))


def test_stretch_for_each_mode():
    from napari.components import ViewerModel

    from napari_hdcyclegan._widgets._aspect import PHYSICAL, PIXEL, stretch_for

    layer = ViewerModel().add_image(np.zeros((2, 8, 8)), scale=SCALE, axis_labels=AXES)
    assert stretch_for(PHYSICAL, layer) == 1.0
    assert stretch_for(PIXEL, layer) == pytest.approx(17.89 / 3.87)
    assert stretch_for("axial ×3", layer) == 3.0
    with pytest.raises(ValueError):
        stretch_for("sideways", layer)


def test_one_aspect_for_all_layers_and_widgets(make_napari_viewer, tiny_model, cartoon_volume):
    from napari_hdcyclegan._widgets._aspect import PHYSICAL, PIXEL
    from napari_hdcyclegan._widgets.compare import CompareWidget
    from napari_hdcyclegan._widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    vol = viewer.add_image(cartoon_volume(2, 32, 40, ((10, 20, 100.0),)), name="vol", scale=SCALE,
                           units="um", axis_labels=AXES)
    other = viewer.add_image(np.zeros((32, 40), np.float32), name="bscan", scale=SCALE[1:],
                             units="um")
    assert pixel_aspect(vol) == pytest.approx(3.87 / 17.89)  # the 1:4.6 strip
    denoise, compare = DenoiseWidget(viewer), CompareWidget(viewer)
    denoise.layer_combo.value = vol
    denoise.aspect_combo.value = PIXEL
    assert pixel_aspect(vol) == pytest.approx(1.0)
    np.testing.assert_allclose(vol.scale, SCALE)  # the data keeps its µm scale
    assert tuple(str(u) for u in vol.units) == ("micrometer",) * 3
    # every layer gets the same stretch, so layers stay aligned
    assert other.data_to_world((8, 0))[0] == pytest.approx(vol.data_to_world((0, 8, 0))[1])
    # one setting: the other widget shows it; a layer added later (a result, a tile) follows it
    assert compare.aspect_combo.value == PIXEL
    later = viewer.add_image(np.zeros((1, 32, 40), np.float32), name="later", scale=SCALE,
                             units="um", axis_labels=AXES)
    assert pixel_aspect(later) == pytest.approx(1.0)
    compare.aspect_combo.value = "axial ×2"
    assert denoise.aspect_combo.value == "axial ×2"
    assert pixel_aspect(vol) == pytest.approx(2 * 3.87 / 17.89)
    compare.aspect_combo.value = PHYSICAL
    for layer in (vol, other, later):
        np.testing.assert_allclose(layer.affine.affine_matrix, np.eye(layer.ndim + 1))


def test_gallery_tiles_follow_the_aspect(make_napari_viewer, qtbot, tiny_model, cartoon_volume):
    from napari_hdcyclegan._widgets._aspect import PIXEL
    from napari_hdcyclegan._widgets.features import FeatureExplorerWidget

    viewer = make_napari_viewer()
    vol = viewer.add_image(cartoon_volume(2, 32, 40, ((10, 20, 100.0),)), name="vol", scale=SCALE,
                           units="um", axis_labels=AXES)
    widget = FeatureExplorerWidget(viewer)
    widget.set_weights(tiny_model)
    widget.aspect_combo.value = PIXEL
    widget.refresh()
    qtbot.waitUntil(lambda: widget._cache is not None and widget.worker is None, timeout=60_000)
    assert widget.add_gallery() is not None  # tiled in a worker
    qtbot.waitUntil(lambda: widget.gallery_worker is None, timeout=60_000)
    gal = viewer.layers["vol_fmap_gallery"]
    assert pixel_aspect(gal) == pytest.approx(1.0)
    assert pixel_aspect(viewer.layers["vol_fmap"]) == pytest.approx(1.0)
    assert pixel_aspect(vol) == pytest.approx(1.0)


def test_a_result_layer_updated_in_place_keeps_the_aspect(make_napari_viewer):
    """A rerun replaces a result layer's geometry (affine included): the display stretch must stay."""
    from napari_hdcyclegan._widgets._aspect import PIXEL, display_aspect
    from napari_hdcyclegan._widgets._common import geometry, set_image

    viewer = make_napari_viewer()
    vol = viewer.add_image(np.zeros((2, 32, 40), np.float32), name="vol", scale=SCALE, units="um", axis_labels=AXES)
    display_aspect(viewer).set_mode(PIXEL, vol)
    out = set_image(viewer, "vol_out", np.zeros((2, 32, 40), np.float32), **geometry(vol))
    assert pixel_aspect(out) == pytest.approx(1.0)
    again = set_image(viewer, "vol_out", np.ones((2, 32, 40), np.float32), **geometry(vol))  # a rerun
    assert again is out and pixel_aspect(out) == pytest.approx(1.0)
