"""Denoise dock widget: run HDcycleGAN on an image layer, with preview, residual and blend.

The widget only gathers parameters, reads layer data on the main thread, runs
:func:`napari_hdcyclegan.engine.iter_denoised` in napari generator workers (``_workers.start_worker``)
and turns results into layers:

* ``<input>_denoised``: the whole volume, created or replaced only when a run finishes (a cancelled
  run never touches it). Same scale, translate, units, axis_labels and contrast limits as the input;
  ``metadata["provenance"]`` holds the model's provenance.
* ``<input>_residual``: input minus output (float32, symmetric limits), added hidden; shown, it
  is a translucent overlay (:func:`residual_colormap`: blue where the model added signal, clear at
  0, red where it removed some), so the b-scan beneath stays visible. A rerun without it removes
  the earlier run's, which no longer matches the output.
* Blend slider: the opacity of the denoised (and preview) layer drawn over the input with the same
  contrast limits and gray colormap, so the canvas shows ``(1 - a) * input + a * output`` for the
  current view at no cost (nothing is recomputed or copied).
* Live preview: as the dims slider moves, the b-scan under it is denoised (debounced 150 ms, one
  worker at a time, latest request wins) into ``<input>_preview``: a (1, H, W) layer translated to
  that b-scan, so it is only drawn at that slice. The b-scan maps to the model's input by the
  volume's levels, as in the volume run (integer data other than uint8: its bit depth over the whole
  volume), with the model ``auto`` chooses for the whole volume; both are measured once, in the
  worker, and kept for the next previews.
* Aspect: the viewer-wide display aspect ("1:1 µm", "1:1 pixel", axial stretch; ``_aspect.py``).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    ProgressBar,
    PushButton,
    SpinBox,
)
from qtpy.QtWidgets import QWidget

from ._aspect import aspect_combo
from ._common import (
    BROWSE,
    WeightsChooser,
    checked_bscan,
    checked_data,
    connect_layer_list,
    current_bscan,
    geometry,
    image_layer_choices,
    kept_metadata,
    model_info,
    no_image_message,
    place_bscan,
    set_image,
    status_label,
)
from ._dock import ViewerLinks, scrollable
from ._volume import VolumeFacts, volume_model
from ._workers import LatestRequest, WorkerRunner, show_info

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Debounce of the live preview: only denoise once the slider has rested this long.
PREVIEW_DELAY_MS = 150
#: Opacity of the residual overlay when shown.
RESIDUAL_OPACITY = 0.8
#: Smoothing across A-scans after the model (``Denoiser.with_lateral_sigma``): label -> sigma (px).
LATERAL_CHOICES: dict[str, float | None] = {"model's own": None, "off": 0.0, "0.5 px": 0.5, "1 px": 1.0,
                                             "1.5 px": 1.5, "2 px": 2.0, "3 px": 3.0}

#: The "Adapt steps" box's limit (``adapt.MAX_STEPS`` allows more: ~0.5 s a step on a CPU core).
ADAPT_MAX_STEPS = 2000


def residual_colormap() -> Any:
    """Diverging colormap centred on 0 and clear there: blue (input < output), red (input > output)."""
    from napari.utils.colormaps import Colormap

    return Colormap(colors=[[0.15, 0.55, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.3, 0.15, 1.0]],
                    controls=[0.0, 0.5, 1.0], name="residual blue-clear-red")


def denoise_volume(data: np.ndarray, weights: str, device: str, batch_size: int, residual: bool,
                   lateral_sigma: float | None = None, adapt_steps: int = 0
                   ) -> Generator[tuple[int, int], None, dict[str, Any]]:
    """Worker: (``adapt_steps``: adapt the model to ``data`` first, yielding (step, steps)) denoise
    ``data`` batch by batch, yielding (done, total); returns a result dict."""
    from napari_hdcyclegan.adapt import iter_adapt
    from napari_hdcyclegan.engine import choose_denoiser, iter_denoised
    from napari_hdcyclegan.intensity import looks_linear
    from napari_hdcyclegan.model.choice import AUTO
    from napari_hdcyclegan.normalise import empty_bscans

    data = np.asarray(data)
    stack = data[None] if data.ndim == 2 else data
    yield 0, stack.shape[0]  # lets a Cancel during model loading stop the run before any compute
    # under auto, a no-data marker anywhere is refused before a model is chosen, loaded or adapted
    empty = empty_bscans(data, refuse_outliers=str(weights) == AUTO)
    denoiser, choice = choose_denoiser(weights, device, data=stack)
    denoiser.batch_size = batch_size
    # smoothing chosen first, as in the CLI: the adaptation's held-out score sees the output as shown
    denoiser = denoiser.with_lateral_sigma(lateral_sigma)
    adaptation = None
    if adapt_steps:
        base = denoiser.name
        denoiser, adaptation = yield from iter_adapt(denoiser, stack, adapt_steps)
    out = yield from iter_denoised(denoiser, data)
    result: dict[str, Any] = {"denoised": out, **model_info(denoiser, choice, data)}
    if adaptation is not None:
        result["provenance"]["adaptation"] = adaptation.to_json()
        result["adaptation"] = adaptation.describe(base)
    result["empty_bscans"] = empty
    result["linear_level"] = looks_linear(data)
    if residual:
        res = data.astype(np.float32) - out.astype(np.float32)
        finite = np.abs(res[np.isfinite(res)])  # an all-NaN b-scan must not make the contrast limits NaN
        limit = float(np.percentile(finite, 99.5)) if finite.size else 0.0
        result["residual"], result["residual_limit"] = res, limit or 1.0
    return result


def denoise_bscan(bscan: np.ndarray, weights: str, device: str, lateral_sigma: float | None = None,
                  volume: Any = None, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker: denoise one b-scan (live preview) of ``volume`` as the volume run does
    (:func:`._volume.volume_model`); the result's ``"known"`` goes back in as ``known`` next time."""
    denoiser, choice, levels, known = volume_model(weights, device, bscan, volume, known)
    denoiser = denoiser.with_lateral_sigma(lateral_sigma)
    return {"denoised": denoiser.denoise(bscan, levels=levels), "known": known,
            **model_info(denoiser, choice, bscan, levels)}


def _remove_stale_residual(viewer: napari.Viewer, source: Image) -> None:
    """Remove ``<source>_residual`` of an earlier run: it no longer matches the new ``_denoised``."""
    name = f"{source.name}_residual"
    if name in viewer.layers and viewer.layers[name].metadata.get("source_layer") == source.name:
        viewer.layers.remove(name)


class DenoiseWidget(ViewerLinks, WeightsChooser, WorkerRunner, QWidget):
    """Dock widget: HDcycleGAN denoising of an image layer (2D b-scan or 3D volume)."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from napari_hdcyclegan.engine import available_devices, default_batch_size

        self.viewer = napari_viewer
        self.worker = None  # the running whole-volume worker
        self._progress = None
        self._extra_weights: list[str] = []
        self._last_weights = None

        self.layer_combo = ComboBox(label="Image", choices=self._layer_choices)
        self.weights_combo = self._make_weights_combo()
        self.device_combo = ComboBox(label="Device", choices=available_devices())
        self._device_batch = default_batch_size(self.device_combo.value)
        self.batch_spin = SpinBox(label="Batch size", value=self._device_batch, min=1, max=256,
                                  tooltip="b-scans per forward pass (choosing a device sets its default)")
        self.lateral_combo = ComboBox(label="Lateral smoothing", choices=list(LATERAL_CHOICES),
                                      value="model's own",
                                      tooltip="Gaussian across A-scans after the model (its own: from its config)")
        self.adapt_spin = SpinBox(label="Adapt steps", value=0, min=0, max=ADAPT_MAX_STEPS,
                                  tooltip="0: off. Fine-tune the model on this layer's own column halves first "
                                          "(Noise2Noise; ~0.5 s a step on a CPU core), kept only if it scores "
                                          "better on columns it did not train on. For scans from a scanner the "
                                          "shipped models were not trained on (skipped where neighbouring A-scans "
                                          "share speckle, as on most averaged Spectralis scans); the live preview "
                                          "shows the model before adaptation")
        self.residual_check = CheckBox(text="Residual layer (input - output, hidden)", value=True)
        self.run_button = PushButton(text="Denoise volume")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", value=0, max=1)
        self.blend_slider = FloatSlider(label="Blend in->out", value=1.0, min=0.0, max=1.0,
                                        step=0.05, tooltip="opacity of the output over the input")
        self.preview_check = CheckBox(text="Live preview of the current b-scan", value=False,
                                      tooltip="denoise the b-scan under the slider whenever it rests "
                                              "(the model before any adaptation)")
        self.status = status_label()
        self.aspect_combo = aspect_combo(self.viewer, lambda: self.layer_combo.value)
        self._last_weights = self.weights_combo.value

        self.controls = Container(widgets=[
            self.layer_combo, self.weights_combo, self.device_combo, self.batch_spin,
            self.lateral_combo, self.adapt_spin, self.residual_check,
            Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False),
            self.progress_bar, self.blend_slider, self.preview_check, self.aspect_combo,
            self.status,
        ])
        scrollable(self, self.controls.native)

        self._preview = LatestRequest(self, PREVIEW_DELAY_MS, self.start_preview)
        self._known = VolumeFacts()

        connect_layer_list(self.viewer, self.layer_combo, owner=self)
        self.weights_combo.changed.connect(self._on_weights_changed)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.blend_slider.changed.connect(self._apply_blend)
        self.preview_check.changed.connect(self._on_preview_toggled)
        self.layer_combo.changed.connect(self._schedule_preview)
        self.device_combo.changed.connect(self._on_device_changed)
        self.device_combo.changed.connect(self._schedule_preview)
        self.lateral_combo.changed.connect(self._schedule_preview)
        self.link(self.viewer.dims.events.current_step, self._schedule_preview)

    def _on_device_changed(self, device: str) -> None:
        """Set the batch to the new device's default when that differs from the old one's (a user's
        choice stays when, say, "auto" and "cpu" name the same CPU)."""
        from napari_hdcyclegan.engine import default_batch_size

        default = default_batch_size(device)
        if default != self._device_batch:
            self.batch_spin.value = self._device_batch = default

    @property
    def preview_worker(self) -> Any:
        """The running preview worker (None when none runs)."""
        return self._preview.worker

    @property
    def _preview_timer(self) -> Any:
        return self._preview.timer

    @property
    def _preview_pending(self) -> bool:
        return self._preview.pending

    def on_links_closed(self) -> None:
        """Dock closed: no more previews (a whole-volume run still delivers its result)."""
        self._preview.drop()

    # -- choices -------------------------------------------------------------------------------
    def _layer_choices(self, widget: Any = None) -> list[tuple[str, Image]]:
        return image_layer_choices(self.viewer)

    def _on_weights_changed(self, value: str) -> None:
        if value != BROWSE:
            self._last_weights = value
            self._schedule_preview()
        elif not self._browse_weights():  # dialog cancelled: back to the previous choice
            self.weights_combo.value = self._last_weights

    # -- whole-volume run ----------------------------------------------------------------------
    def run(self) -> Any:
        """Start denoising the chosen layer in a worker; returns the worker (None if not started)."""
        layer = self.layer_combo.value
        if layer is None:
            show_info(no_image_message(self.viewer, "Denoise"))
            return None
        if self._busy("Denoise: a run is already in progress"):
            return None
        data = checked_data(layer, "Denoise")  # read in the worker: a lazy volume would block napari
        if data is None:
            return None
        total = 1 if data.ndim == 2 else data.shape[0]
        adapt = int(self.adapt_spin.value)
        status = f"Adapting the model to {layer.name}, then denoising ..." if adapt else f"Running on {layer.name} ..."
        return self._start_worker(denoise_volume, total, f"Denoising {layer.name}",
                                  partial(self._on_denoised, layer), partial(self._on_error, "Denoise"),
                                  status, data, self.weights_combo.value,
                                  self.device_combo.value, int(self.batch_spin.value),
                                  bool(self.residual_check.value), LATERAL_CHOICES[self.lateral_combo.value],
                                  adapt)

    def _on_denoised(self, source: Image, result: dict[str, Any]) -> None:
        if self._source_removed("Denoise", source):
            return
        out = result["denoised"]
        metadata = {"source_layer": source.name, "provenance": result["provenance"]}
        denoised = set_image(self.viewer, f"{source.name}_denoised", out,
                             contrast_limits=tuple(source.contrast_limits), colormap="gray",
                             metadata={**kept_metadata(source), **metadata}, blending="translucent",
                             **geometry(source))
        if "residual" in result:
            limit = result["residual_limit"]
            set_image(self.viewer, f"{source.name}_residual", result["residual"],
                      colormap=residual_colormap(), contrast_limits=(-limit, limit), visible=False,
                      blending="translucent", opacity=RESIDUAL_OPACITY,
                      metadata={**metadata, "residual": "input - output"}, **geometry(source))
        else:
            _remove_stale_residual(self.viewer, source)
        self._apply_blend()
        self.viewer.layers.selection.active = denoised
        label = result["name"]
        if not result["trained"] and "untrained" not in label.lower():
            label += " (UNTRAINED, random weights)"
        self.status.value = f"Done: {denoised.name} with {label}"
        if result.get("empty_bscans"):
            empty = result["empty_bscans"]
            self.status.value += (f"; {len(empty)} b-scan(s) without a finite pixel left as they are "
                                  f"(first: {empty[0]})")
        if "adaptation" in result:
            self.status.value += f"; {result['adaptation']}"
        if result.get("linear_level") is not None:
            from napari_hdcyclegan.intensity import linear_warning

            show_info(linear_warning(source.name, result["linear_level"]))
            self.status.value += "; the input looks like linear intensities (little is denoised)"
        if not result["trained"]:
            show_info("Denoise used an UNTRAINED model (random weights): the output is not denoised")

    def _on_error(self, what: str, exc: BaseException) -> None:
        # napari's worker also relays the exception to the notification manager (with traceback
        # in the console); the status line keeps the one-line reason in the widget.
        self.status.value = f"{what} failed: {exc}"

    # -- blend ---------------------------------------------------------------------------------
    def _apply_blend(self, value: float | None = None) -> None:
        layer = self.layer_combo.value
        if layer is None:
            return
        alpha = float(self.blend_slider.value)
        for suffix in ("_denoised", "_preview"):
            name = layer.name + suffix
            if name in self.viewer.layers:
                self.viewer.layers[name].opacity = alpha

    # -- live preview --------------------------------------------------------------------------
    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self._schedule_preview()
        else:
            self._preview.drop()  # results still in flight are dropped

    def _schedule_preview(self, event: Any = None) -> None:
        if self.preview_check.value and not self.closed:
            self._preview.schedule()

    def start_preview(self) -> Any:
        """Denoise the b-scan under the dims slider now; returns the worker (None if deferred)."""
        layer = self.layer_combo.value
        if layer is None or not self.preview_check.value or self.closed:
            return None
        ticket = self._preview.next()
        if ticket is None:  # one at a time; the newest request runs next
            return None
        index = current_bscan(self.viewer, layer)
        bscan = checked_bscan(layer, "Preview", index)
        if bscan is None:
            return None
        volume = layer.data if layer.ndim == 3 else None  # for its levels, read in the worker
        return self._preview.launch(denoise_bscan, bscan, self.weights_combo.value, self.device_combo.value,
                                    LATERAL_CHOICES[self.lateral_combo.value], volume, self._known.get(volume),
                                    returned=partial(self._on_preview, ticket, layer, index, volume),
                                    errored=partial(self._on_error, "Preview"))

    def _on_preview(self, ticket: int, source: Image, index: int, volume: Any,
                    result: dict[str, Any]) -> None:
        if volume is not None:  # the data measured, not the layer's data now (it may have been replaced)
            self._known.update(volume, result["known"])
        if not self._preview.is_latest(ticket) or source not in self.viewer.layers:
            return  # stale: the slider moved (or preview was switched off) meanwhile
        out, geo = place_bscan(source, index, result["denoised"])
        metadata = {**kept_metadata(source), "source_layer": source.name, "bscan": index,
                    "provenance": result["provenance"]}
        set_image(self.viewer, f"{source.name}_preview", out,
                  contrast_limits=tuple(source.contrast_limits), colormap="gray",
                  blending="translucent", metadata=metadata, **geo)
        self._apply_blend()
        self.status.value = f"Preview of b-scan {index}"
