"""Feature-map explorer: one generator channel, upscaled over the b-scan under the dims slider.

The widget reads the current b-scan on the main thread and computes *all* channels of the chosen
stage for it in a napari worker (:meth:`Denoiser.feature_maps`); the maps are cached, so stepping
through channels, colormaps and opacity is instant. Layers:

* ``<input>_fmap``: the chosen channel ((H, W) for a 2D source; (1, H, W) placed at the current
  b-scan for a volume), with the source's scale, translate, units and axis_labels, drawn additively
  over it; ``metadata`` holds stage, channel, b-scan and the model's provenance.
* ``<input>_fmap_gallery``: every channel of the stage for the current b-scan, each scaled to
  [0, 1] and tiled into a grid (skimage.util.montage), placed like ``<input>_fmap``.
* Export: the shown map to TIFF with its scale (napari_hdcyclegan.io.write_tiff).

Closing the dock disconnects the widget from the viewer (``_dock.ViewerLinks``): it stops adding
maps to new layers. The gallery follows the viewer's display aspect (``_aspect.py``); "1:1 pixel"
shows each tile with square pixels.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSlider, PushButton, Slider
from qtpy.QtWidgets import QWidget

from ..stages import GENERATOR_STAGES
from ._aspect import aspect_combo
from ._common import (
    BROWSE,
    WeightsChooser,
    checked_bscan,
    connect_layer_list,
    current_bscan,
    image_layer_choices,
    model_info,
    place_bscan,
    save_with_dialog,
    set_image,
    status_label,
)
from ._dock import ViewerLinks, scrollable
from ._volume import VolumeFacts, volume_model
from ._workers import LatestRequest, show_info, start_worker

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Stages of the paper-size generator (the list follows the loaded model's n_res once it is known);
#: the early ones stay spatially faithful to the input.
STAGES = GENERATOR_STAGES
COLORMAPS = ("magma", "inferno", "viridis", "turbo", "twilight", "gray")
#: Debounce of recomputation after the dims slider, stage or layer changed.
DELAY_MS = 150


def compute_maps(bscan: np.ndarray, weights: str, stage: str, volume: Any = None,
                 known: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker: all channels of ``stage`` for one b-scan of ``volume``, with the model's provenance; the
    model and the input mapping are the volume run's (:func:`._volume.volume_model`)."""
    denoiser, choice, levels, known = volume_model(weights, "auto", bscan, volume, known)
    maps = np.asarray(denoiser.feature_maps(bscan, stage, levels=levels), dtype=np.float32)
    return {"maps": maps, "stages": tuple(denoiser.stage_channels()), "known": known, **model_info(denoiser, choice)}


def gallery(maps: np.ndarray) -> np.ndarray:
    """Tile (C, H, W) maps, each scaled to [0, 1], into one near-square grid, tiles separated by
    gaps of 2 % of a tile (at least 2 px) so that they stay apart when zoomed out."""
    from skimage.util import montage

    maps = np.asarray(maps, dtype=np.float32)
    lo = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - lo
    unit = np.divide(maps - lo, span, out=np.zeros_like(maps), where=span > 0)
    gap = max(2, round(0.02 * max(maps.shape[1:])))
    return montage(unit, fill=0.0, padding_width=gap).astype(np.float32)


class FeatureExplorerWidget(ViewerLinks, WeightsChooser, QWidget):
    """Dock widget: pick a generator stage and channel and see its map over the b-scan."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._cache: dict[str, Any] | None = None  # {"key": ..., "maps": (C, H, W), ...}
        self.gallery_worker: Any = None  # tiling the gallery
        self._extra_weights: list[str] = []

        self.layer_combo = ComboBox(label="Image", choices=self._layer_choices)
        self.weights_combo = self._make_weights_combo()
        self.stage_combo = ComboBox(label="Stage", choices=list(STAGES), value="init",
                                    tooltip="where in the generator the maps are taken: init (first "
                                            "convolution), down, res(idual) and up blocks, final")
        self.channel_slider = Slider(label="Channel", value=0, min=0, max=15,
                                     tooltip="which map of the stage is shown over the b-scan")
        self.prev_button = PushButton(text="< channel")
        self.next_button = PushButton(text="channel >")
        self.cmap_combo = ComboBox(label="Colormap", choices=list(COLORMAPS), value="magma")
        self.opacity_slider = FloatSlider(label="Opacity", value=0.6, min=0.0, max=1.0, step=0.05)
        self.gallery_button = PushButton(text="Gallery of all channels",
                                         tooltip="every map of the stage tiled in one layer, each scaled to 0..1")
        self.export_button = PushButton(text="Export map to TIFF...")
        self.status = status_label()
        self.aspect_combo = aspect_combo(self.viewer, lambda: self.layer_combo.value)
        self.controls = Container(widgets=[
            self.layer_combo, self.weights_combo, self.stage_combo, self.channel_slider,
            Container(widgets=[self.prev_button, self.next_button], layout="horizontal", labels=False),
            self.cmap_combo, self.opacity_slider, self.gallery_button, self.export_button,
            self.aspect_combo, self.status,
        ])
        scrollable(self, self.controls.native)

        self._maps = LatestRequest(self, DELAY_MS, self.refresh)
        self._known = VolumeFacts()

        connect_layer_list(self.viewer, self.layer_combo, owner=self)
        for widget in (self.layer_combo, self.weights_combo, self.stage_combo):
            widget.changed.connect(self._schedule)
        self.weights_combo.changed.connect(self._on_weights_changed)
        self.link(self.viewer.dims.events.current_step, self._schedule)
        self.channel_slider.changed.connect(self.show_channel)
        self.prev_button.changed.connect(partial(self.step, -1))
        self.next_button.changed.connect(partial(self.step, 1))
        self.cmap_combo.changed.connect(self._apply_style)
        self.opacity_slider.changed.connect(self._apply_style)
        self.gallery_button.changed.connect(self.add_gallery)
        self.export_button.changed.connect(self._export_dialog)
        self._schedule()

    # -- choices -------------------------------------------------------------------------------
    def _layer_choices(self, widget: Any = None) -> list[tuple[str, Image]]:
        return image_layer_choices(self.viewer, exclude=("_fmap", "_fmap_gallery"))

    # -- computing -----------------------------------------------------------------------------
    @property
    def worker(self) -> Any:
        """The running worker (None when none runs)."""
        return self._maps.worker

    def _schedule(self, event: Any = None) -> None:
        if not self.closed:
            self._maps.schedule()

    def on_links_closed(self) -> None:
        """Dock closed: no more computations; results still in flight are dropped."""
        self._maps.drop()

    def _request(self) -> tuple[Any, int, str, str] | None:
        layer = self.layer_combo.value
        weights = self.weights_combo.value
        if layer is None or weights in (None, BROWSE):
            return None
        return layer, current_bscan(self.viewer, layer), str(self.stage_combo.value), str(weights)

    def refresh(self) -> Any:
        """Compute the maps of the current b-scan and stage (cached); returns the worker or None."""
        request = self._request()
        if request is None or self.closed:
            return None
        layer, index, stage, weights = request
        key = (id(layer), index, stage, weights)
        if self._cache is not None and self._cache["key"] == key:
            self.show_channel()
            return None
        if self._maps.next() is None:  # one at a time; the latest request runs next
            return None
        bscan = checked_bscan(layer, "Feature maps", index)
        if bscan is None:
            return None
        self.status.value = f"Computing {stage} maps of b-scan {index} ..."
        volume = layer.data if layer.ndim == 3 else None  # for the volume's model and levels, read in the worker
        return self._maps.launch(compute_maps, bscan, weights, stage, volume, self._known.get(volume),
                                 returned=partial(self._on_maps, key, layer, index, stage, volume),
                                 errored=self._on_error)

    def _on_maps(self, key: tuple, layer: Image, index: int, stage: str, volume: Any,
                 result: dict[str, Any]) -> None:
        if volume is not None:  # the data measured, not the layer's data now (it may have been replaced)
            self._known.update(volume, result.pop("known"))
        if layer not in self.viewer.layers:  # else the status line kept saying "Computing ..."
            self.status.value = f"Feature maps: layer {layer.name!r} was removed; its maps were dropped"
        now = self._request()
        if now is None or key != (id(now[0]), *now[1:]):
            self._maps.mark_pending()  # stale: the view changed meanwhile; recompute when finished
            return
        self._cache = {"key": key, "layer": layer, "index": index, "stage": stage, **result}
        if tuple(self.stage_combo.choices) != result["stages"]:  # this model's n_res
            self.stage_combo.choices = result["stages"]
        n = result["maps"].shape[0]
        self.channel_slider.max = n - 1
        if self.channel_slider.value > n - 1:
            self.channel_slider.value = n - 1
        self.show_channel()

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"Feature maps failed: {exc}"

    # -- layers --------------------------------------------------------------------------------
    def _metadata(self, channel: int | None, cache: dict[str, Any] | None = None) -> dict[str, Any]:
        c = cache if cache is not None else self._cache
        assert c is not None, "no feature maps computed yet"
        return {"source_layer": c["layer"].name, "stage": c["stage"], "channel": channel,
                "bscan": c["index"], "model": c["name"], "trained": c["trained"],
                "provenance": c["provenance"]}

    def show_channel(self, value: Any = None) -> Any:
        """Show the selected channel of the cached maps as ``<input>_fmap``; returns the layer."""
        c = self._cache
        if c is None or c["layer"] not in self.viewer.layers or self.closed:
            return None
        channel = int(np.clip(self.channel_slider.value, 0, c["maps"].shape[0] - 1))
        fmap = c["maps"][channel]
        data, geo = place_bscan(c["layer"], c["index"], fmap)
        hi = float(fmap.max())
        layer = set_image(self.viewer, f"{c['layer'].name}_fmap", data, blending="additive",
                          colormap=self.cmap_combo.value, opacity=float(self.opacity_slider.value),
                          contrast_limits=(float(fmap.min()), hi if hi > fmap.min() else hi + 1.0),
                          metadata=self._metadata(channel), **geo)
        untrained = "" if c["trained"] else " (UNTRAINED model)"
        self.status.value = (f"{c['stage']} channel {channel}/{c['maps'].shape[0] - 1}, "
                             f"b-scan {c['index']}{untrained}")
        return layer

    def step(self, delta: int, value: Any = None) -> None:
        """Move the channel slider by ``delta`` (wrapping around)."""
        n = int(self.channel_slider.max) + 1
        self.channel_slider.value = (int(self.channel_slider.value) + delta) % n

    def _apply_style(self, value: Any = None) -> None:
        c = self._cache
        if c is None:
            return
        name = f"{c['layer'].name}_fmap"
        if name in self.viewer.layers:
            self.viewer.layers[name].colormap = self.cmap_combo.value
            self.viewer.layers[name].opacity = float(self.opacity_slider.value)

    def add_gallery(self, value: Any = None) -> Any:
        """Tile all channels of the stage in a worker (128 full-size maps take seconds) and add them
        as ``<input>_fmap_gallery`` when done; returns the worker (None if nothing to tile)."""
        c = self._cache
        if c is None or c["layer"] not in self.viewer.layers:
            show_info("Feature maps: nothing computed yet")
            return None
        if self.gallery_worker is not None:
            show_info("Feature maps: a gallery is being tiled")
            return None
        self.status.value = f"Tiling {c['maps'].shape[0]} {c['stage']} maps ..."
        self.gallery_worker = start_worker(gallery, c["maps"], returned=partial(self._on_gallery, c),
                                           finished=self._gallery_finished)
        return self.gallery_worker

    def _gallery_finished(self) -> None:
        self.gallery_worker = None

    def _on_gallery(self, c: dict[str, Any], tiles: np.ndarray) -> None:
        if c["layer"] not in self.viewer.layers or self.closed:
            return
        data, geo = place_bscan(c["layer"], c["index"], tiles)
        meta = self._metadata(None, c)  # the maps tiled, even if the view moved on meanwhile
        meta["gallery"] = f"{c['maps'].shape[0]} channels, row-major tiles, each scaled to [0, 1]"
        set_image(self.viewer, f"{c['layer'].name}_fmap_gallery", data, colormap=self.cmap_combo.value,
                  contrast_limits=(0.0, 1.0), metadata=meta, **geo)
        self.status.value = f"Gallery of {c['maps'].shape[0]} {c['stage']} channels, b-scan {c['index']}"

    def export(self, path: str | Path) -> str | None:
        """Write the shown map (2D, source scale) to a TIFF file; returns the path."""
        c = self._cache
        if c is None:
            show_info("Feature maps: nothing to export yet")
            return None
        channel = int(self.channel_slider.value)
        source = c["layer"]
        scale = tuple(source.scale)[-2:]
        units = tuple(str(u) for u in source.units)[-2:]
        labels = tuple(source.axis_labels)[-2:]
        from napari_hdcyclegan.io import write_tiff

        return write_tiff(path, c["maps"][channel], scale=scale, units=units, axis_labels=labels,
                          metadata=self._metadata(channel))

    def _export_dialog(self, value: Any = None) -> None:
        if self._cache is None:
            show_info("Feature maps: nothing to export yet")
            return
        c = self._cache
        default = f"{c['layer'].name}_{c['stage']}_ch{int(self.channel_slider.value)}.tif"
        save_with_dialog(self, "Export feature map", default, "TIFF (*.tif *.tiff)", self.export,
                         "Feature maps")
