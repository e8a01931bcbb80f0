"""Compare dock widget: HDcycleGAN next to BM3D / wavelet (/ NL-means) in napari's grid mode.

One action computes the baselines of :mod:`napari_hdcyclegan.baselines` for the current b-scan or
the whole volume in a generator worker (:func:`napari_hdcyclegan.baselines.iter_comparison`; cancel
between b-scans), takes the model output from an
existing ``<input>_denoised`` layer of the input's shape (or computes it), and lays raw / model /
baselines out in grid mode: every result copies the input's scale, translate, units and
axis_labels (so one dims slider drives all of them) and its contrast limits are linked to the raw
layer's. Baselines run b-scan by b-scan in both modes, so a current-b-scan result equals that
b-scan of a whole-volume result. Results of the current-b-scan mode are (1, H, W) layers placed at
their b-scan (``<input>_bm3d`` ...; the model's is ``<input>_preview``, as in the denoise widget).
The model is the one chosen in the widget (weights and device, as in the denoise widget); an existing
``<input>_denoised`` layer is reused only when it came from those weights (or records no model), and
a whole-volume model result never replaces another model's ``<input>_denoised`` (it is then named
``<input>_denoised_<model>``). Table rows and grid tile titles name the model.

The table shows, for the b-scan under the dims slider, CNR and MSR of each method (signal and
background masks from :func:`napari_hdcyclegan.metrics.signal_background_masks` of the LN reference,
or of the raw b-scan when none is chosen) and, with an LN reference layer, PSNR and SSIM after DFT
registration (:func:`napari_hdcyclegan.metrics.score_methods`). It is recomputed in a worker,
debounced, latest request wins, as the slider moves.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    ProgressBar,
    PushButton,
    RadioButtons,
)
from qtpy.QtWidgets import QAbstractScrollArea, QTableWidget, QTableWidgetItem, QWidget

from ._aspect import aspect_combo
from ._common import (
    WeightsChooser,
    checked_data,
    connect_layer_list,
    current_bscan,
    geometry,
    image_layer_choices,
    kept_metadata,
    no_image_message,
    set_image,
    slice_geometry,
    status_label,
)
from ._dock import ViewerLinks, scrollable
from ._scores import made_with, model_label, score_bscans, score_or_reason, slice_of  # noqa: F401
from ._volume import VolumeFacts, volume_model
from ._workers import LatestRequest, WorkerRunner, show_info

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

CURRENT, VOLUME = "current b-scan", "whole volume"
NO_REFERENCE = "(none)"
#: Table columns: metric key in metrics.score_pair -> header.
COLUMNS = {"CNR": "CNR", "MSR": "MSR", "PSNR": "PSNR (dB)", "SSIM": "SSIM"}
TABLE_DELAY_MS = 150
#: Gap between grid tiles (fraction of a tile).
GRID_SPACING = 0.03


def compute_comparison(stack: np.ndarray, methods: tuple[str, ...], need_model: bool,
                       weights: str, device: str, volume: Any = None
                       ) -> Generator[tuple[int, int], None, dict[str, Any]]:
    """Worker: model (if needed) and baselines of every b-scan of ``stack``; yields (done, total).
    ``stack`` part of ``volume``: the model is the one ``auto`` chooses for the volume, and it maps
    the stack by the volume's levels, as a volume run does."""
    from napari_hdcyclegan.baselines import iter_comparison
    from napari_hdcyclegan.intensity import looks_linear

    stack = np.array(stack)  # read here, off the main thread (a copy: the layer may change meanwhile)
    if stack.ndim == 2:
        stack = stack[None]
    yield 0, stack.shape[0] * (len(methods) + int(need_model))  # Cancel works while the model loads
    denoiser = choice = levels = None
    if need_model:
        denoiser, choice, levels, _ = volume_model(weights, device, stack, volume)
    output = yield from iter_comparison(stack, methods, denoiser, levels)
    output["provenance"] = denoiser.provenance(choice, stack, levels) if denoiser is not None else None
    output["linear_level"] = looks_linear(stack)
    return output


class CompareWidget(ViewerLinks, WeightsChooser, WorkerRunner, QWidget):
    """Dock widget: raw / model / BM3D / wavelet / NL-means side by side, with a metrics table."""

    aborted_message = "Cancelled; existing layers unchanged"
    cancelling_message = "Cancelling after the current b-scan ..."

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._progress = None
        self._shown: dict[str, str] = {}  # row label -> layer name of the last comparison
        self._shown_status = ""  # the status line that comparison left
        self._hidden_by_grid: list[Any] = []
        self._linked: list[Any] = []
        self._extra_weights: list[str] = []
        from napari_hdcyclegan.engine import available_devices

        self.layer_combo = ComboBox(label="Image", choices=self._layer_choices)
        self.weights_combo = self._make_weights_combo(
            tooltip="model compared (an <image>_denoised layer made with it is reused)")
        self.device_combo = ComboBox(label="Device", choices=available_devices())
        self.reference_combo = ComboBox(label="LN reference", choices=self._reference_choices,
                                        tooltip="low-noise image for PSNR/SSIM (optional)")
        self.bm3d_check = CheckBox(text="BM3D", value=True, tooltip="the reference classical denoiser (the "
                                   "optional bm3d extra; 4-20 s a b-scan)")
        self.wavelet_check = CheckBox(text="Wavelet", value=True, tooltip="BayesShrink wavelet shrinkage "
                                      "(scikit-image), fast")
        self.nlmeans_check = CheckBox(text="NL-means", value=False, tooltip="non-local means (scikit-image)")
        self.scope_radio = RadioButtons(choices=[CURRENT, VOLUME], value=CURRENT,  # type: ignore[call-arg]
                                        orientation="horizontal", tooltip="compare on the b-scan under "
                                        "the slider (seconds) or on every b-scan")
        self.run_button = PushButton(text="Compare")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.grid_check = CheckBox(text="Grid view", value=True)
        self.progress_bar = ProgressBar(label="Progress", value=0, max=1)
        self.status = status_label()
        self.aspect_combo = aspect_combo(self.viewer, lambda: self.layer_combo.value)

        self.controls = Container(widgets=[
            self.layer_combo, self.weights_combo, self.device_combo, self.reference_combo,
            Container(widgets=[self.bm3d_check, self.wavelet_check, self.nlmeans_check],
                      layout="horizontal", labels=False),
            self.scope_radio,
            Container(widgets=[self.run_button, self.cancel_button, self.grid_check],
                      layout="horizontal", labels=False),
            self.aspect_combo, self.progress_bar, self.status,
        ])
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS.values()))
        self.table.setMinimumHeight(170)
        # ask the dock for the width of all columns rather than hiding SSIM behind a scroll bar
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        scrollable(self, self.controls.native, self.table)

        self._scores = LatestRequest(self, TABLE_DELAY_MS, self.update_table)
        self._reference_facts = VolumeFacts()  # the LN reference volume's data range, for the table

        connect_layer_list(self.viewer, self.layer_combo, self.reference_combo, owner=self)
        self.weights_combo.changed.connect(self._on_weights_changed)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.grid_check.changed.connect(self._on_grid_toggled)
        self.reference_combo.changed.connect(self._schedule_table)
        self.link(self.viewer.dims.events.current_step, self._schedule_table)

    @property
    def score_worker(self) -> Any:
        """The running metrics-table worker (None when none runs)."""
        return self._scores.worker

    @property
    def weights(self) -> str:
        """The chosen model (a shipped or user model's name, or a model directory)."""
        return str(self.weights_combo.value)

    @weights.setter
    def weights(self, value: str) -> None:
        names = [v for _, v in self._weights_choices()]
        if value in names:
            self.weights_combo.value = value
        else:
            self.set_weights(value)

    @property
    def device(self) -> str:
        """The chosen device ("auto", "cpu", "cuda:N", ...)."""
        return str(self.device_combo.value)

    @device.setter
    def device(self, value: str) -> None:
        self.device_combo.value = value

    def on_links_closed(self) -> None:
        """Dock closed: the table stops following the slider."""
        self._scores.timer.stop()

    def _layer_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        return image_layer_choices(self.viewer)

    def _reference_choices(self, widget: Any = None) -> list[tuple[str, Any]]:
        return [(NO_REFERENCE, None)] + image_layer_choices(self.viewer)

    def methods(self) -> tuple[str, ...]:
        """Baseline keys ticked, in display order."""
        ticks = {"bm3d": self.bm3d_check, "wavelet": self.wavelet_check,
                 "nlmeans": self.nlmeans_check}
        return tuple(key for key, box in ticks.items() if box.value)

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> Any:
        """Start the comparison in a worker; returns the worker (None if not started)."""
        layer = self.layer_combo.value
        if layer is None:
            show_info(no_image_message(self.viewer, "Compare"))
            return None
        if self._busy("Compare: a comparison is already running"):
            return None
        data = checked_data(layer, "Compare")  # read in the worker; one b-scan only for the current one
        if data is None:
            return None
        self._shown_status = ""  # this run's outcome (done, failed, cancelled) is what the line says now
        volume_mode = data.ndim == 2 or self.scope_radio.value == VOLUME
        index = 0 if data.ndim == 2 else current_bscan(self.viewer, layer)
        # a 2D layer gets its b-scan axis in the worker: zarr or h5py arrays refuse data[None]
        stack = data if data.ndim == 2 or volume_mode else data[index:index + 1]
        n_bscans = 1 if data.ndim == 2 else stack.shape[0]
        denoised = self.viewer.layers[f"{layer.name}_denoised"] \
            if f"{layer.name}_denoised" in self.viewer.layers else None
        reuse = denoised is not None and tuple(denoised.data.shape) == data.shape \
            and made_with(denoised, self.weights)
        return self._start_worker(
            compute_comparison, n_bscans * (len(self.methods()) + int(not reuse)),
            f"Comparing on {layer.name}",
            partial(self._on_results, layer, volume_mode, index, denoised if reuse else None),
            self._on_error, "Computing " + ", ".join(self.methods() + (() if reuse else ("model",))),
            stack, self.methods(), not reuse, self.weights, self.device, None if volume_mode else data)

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"Compare failed: {exc}"  # napari notifies with the traceback

    def _on_results(self, source: Image, volume_mode: bool, index: int,
                    denoised: Image | None, output: dict[str, Any]) -> None:
        if self._source_removed("Compare", source):
            return
        for name, message in output["missing"].items():
            show_info(f"{name} skipped: {message}")
        geo = geometry(source) if volume_mode else slice_geometry(source, index)

        def unstack(arr: np.ndarray) -> np.ndarray:
            return arr[0] if source.ndim == 2 else arr

        shown = {"raw": source.name}
        common = {"contrast_limits": tuple(source.contrast_limits), "colormap": "gray",
                  "visible": True, **geo}
        results = output["results"]
        if "model" in results:
            name = self._model_layer_name(source, volume_mode, output["provenance"])
            meta = {**kept_metadata(source), "source_layer": source.name, "provenance": output["provenance"]}
            if not volume_mode:
                meta["bscan"] = index
            set_image(self.viewer, name, unstack(results["model"]), metadata=meta, **common)
            shown[model_label(meta)] = name
        elif denoised is not None:
            denoised.visible = True
            shown[model_label(denoised.metadata, denoised.name)] = denoised.name
        for key in ("bm3d", "wavelet", "nlmeans"):
            if key in results:
                meta = {**kept_metadata(source), "source_layer": source.name, "method": key}
                if not volume_mode:
                    meta["bscan"] = index
                set_image(self.viewer, f"{source.name}_{key}", unstack(results[key]),
                          metadata=meta, **common)
                shown[key] = f"{source.name}_{key}"
        self._shown = shown
        self._link_contrast([self.viewer.layers[n] for n in shown.values()])
        self._arrange(list(shown.values()))
        self.status.value = "Shown: " + ", ".join(shown)
        if output.get("linear_level") is not None:
            from napari_hdcyclegan.intensity import linear_warning

            show_info(linear_warning(source.name, output["linear_level"]))
            self.status.value += "; the input looks like linear intensities (little is denoised)"
        self._shown_status = self.status.value
        self.update_table()

    def _model_layer_name(self, source: Image, volume_mode: bool, provenance: dict) -> str:
        """``<input>_preview`` / ``<input>_denoised``, unless that holds another model's result."""
        if not volume_mode:
            return f"{source.name}_preview"
        name = f"{source.name}_denoised"
        if name in self.viewer.layers and not made_with(self.viewer.layers[name], self.weights):
            return f"{name}_{provenance.get('model', 'model')}"
        return name

    # -- layout --------------------------------------------------------------------------------
    def _link_contrast(self, layers: list[Any]) -> None:
        """Share the raw layer's contrast limits with the results (changing one changes all)."""
        from napari.experimental import link_layers, unlink_layers

        if self._linked:
            unlink_layers([lay for lay in self._linked if lay in self.viewer.layers],
                          ("contrast_limits",))
        link_layers(layers, ("contrast_limits",))
        self._linked = layers

    def _arrange(self, names: list[str]) -> None:
        """Put the compared layers in order on top of the list; grid mode shows only them."""
        for name in names:  # raw first: with stride 1 the lowest visible layer is top-left
            self.viewer.layers.move(self.viewer.layers.index(name), len(self.viewer.layers))
        if self.grid_check.value:
            self._enter_grid(names)

    def _enter_grid(self, names: list[str]) -> None:
        for layer in self.viewer.layers:
            if layer.name not in names and layer.visible:
                layer.visible = False
                self._hidden_by_grid.append(layer)
        for name in names:  # tile titles: napari draws each layer's name in its grid cell
            self.viewer.layers[name].name_overlay.visible = True
        grid = self.viewer.canvas.grid
        grid.spacing = GRID_SPACING
        grid.enabled = True
        self.viewer.reset_view()

    def _on_grid_toggled(self, on: bool) -> None:
        if on and self._shown:
            self._enter_grid(list(self._shown.values()))
        elif not on:
            self.viewer.canvas.grid.enabled = False
            for name in self._shown.values():
                if name in self.viewer.layers:
                    self.viewer.layers[name].name_overlay.visible = False
            for layer in self._hidden_by_grid:
                if layer in self.viewer.layers:
                    layer.visible = True
            self._hidden_by_grid = []

    # -- metrics table -------------------------------------------------------------------------
    def _schedule_table(self, event: Any = None) -> None:
        if self._shown:
            self._scores.schedule()

    def update_table(self) -> Any:
        """Score the b-scan under the slider in a worker; returns it (None if deferred/nothing)."""
        ticket = self._scores.next()
        if ticket is None:  # one at a time; the newest request runs next
            return None
        images: dict[str, np.ndarray] = {}
        for label, name in self._shown.items():
            if name in self.viewer.layers:
                bscan = slice_of(self.viewer.layers[name], self.viewer)
                if bscan is not None:
                    images[label] = bscan
        if "raw" not in images:
            return None
        self._say_what_is_scored([label for label in self._shown if label not in images])
        ref_layer = self.reference_combo.value
        reference = slice_of(ref_layer, self.viewer) if ref_layer is not None else None
        if reference is not None and reference.shape != images["raw"].shape:
            show_info(f"LN reference {ref_layer.name!r} has another b-scan shape; PSNR/SSIM skipped")
            reference = None
        volume = ref_layer.data if reference is not None and ref_layer.ndim == 3 else None
        return self._scores.launch(score_or_reason, images, reference, volume, self._reference_facts.get(volume),
                                   returned=partial(self._on_scores, ticket, list(images), volume),
                                   errored=self._on_score_error)

    def _say_what_is_scored(self, missing: list[str]) -> None:
        """After a current-b-scan comparison, say on other b-scans why its rows are not in the table."""
        if self.worker is not None or not self._shown_status:
            return  # a run's own status line stays
        note = (f"; on this b-scan the table scores raw only: {', '.join(missing)} were computed for "
                "another b-scan (Run compares this one)") if missing else ""
        self.status.value = self._shown_status + note

    def _on_scores(self, ticket: int, rows: list[str], volume: Any,
                   output: tuple[dict[str, dict[str, float]], str, dict[str, Any]]) -> None:
        scores, reason, known = output
        if volume is not None:
            self._reference_facts.update(volume, known)
        if not self._scores.is_latest(ticket):
            return  # the slider moved meanwhile
        if reason:
            self.status.value = f"Metrics unavailable for this b-scan: {reason}"
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels(rows)
        for r, row in enumerate(rows):
            for c, key in enumerate(COLUMNS):
                value = scores.get(row, {}).get(key)
                text = "-" if value is None or not math.isfinite(value) else (
                    f"{value:.3f}" if key == "SSIM" else f"{value:.2f}")
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _on_score_error(self, exc: BaseException) -> None:
        self.status.value = f"Metrics unavailable for this b-scan: {exc}"
