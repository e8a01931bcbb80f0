"""ILM / RPE boundaries and retinal thickness from a generator feature map (paper Fig. A.11).

The widget runs the core generator :func:`napari_hdcyclegan.boundaries.iter_boundaries` in a napari
worker, which also reads the layer's data and builds the line layers (the main thread only adds them);
progress per b-scan; Cancel quits the worker after the current b-scan or calibration step and keeps
the previous result. The
feature channel is the model's ``config.boundary_channel`` or, when the model has none, chosen by
:func:`~napari_hdcyclegan.boundaries.calibrate_boundary_channel` on simulated b-scans (kept in
memory); untick "auto" to pick stage and channel yourself. Results:

* ``<input> ILM (detected)``, ``<input> RPE (detected)``: Shapes paths in eyepy's colours, one path
  per run of detected A-scans per b-scan, in the source's scale/translate/units/axis_labels.
  ``metadata["heights"]`` holds eyepy's layout: float rows (N, W), NaN where missing;
  ``metadata["doubtful"]`` the A-scans the plausibility check flags. A file's own (vendor) lines,
  ``<input>_ILM`` / ``<input>_RPE`` from the reader, are never replaced: the status line gives the
  mean difference between vendor and detected lines.
* "Paper's skeleton only" shows stage one (the skeleton lines) instead of the refined paths.
* ``<input>_thickness``: RPE - ILM per b-scan and A-scan (µm when the source's axial unit is a
  length, else px). The layer has the source's dimensionality with the depth axis collapsed to one
  pixel spanning the whole depth ((N, 1, W) for a volume), so it lines up with the source: view the
  axes b-scan x lateral (roll the dims) for the en-face map. ``metadata["thickness"]`` is (N, W).
* A thickness profile of the b-scan under the dims slider, drawn in the widget.
* Export CSV: ``bscan,ascan,ILM,RPE,thickness_um`` (same writer as the command line).
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, ProgressBar, PushButton, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_hdcyclegan.boundaries import (
    BOUNDARY_COLORS,
    BOUNDARY_NAMES,
    EARLY_STAGES,
    LAYER_BOUNDARIES,
    file_names,
    iter_boundaries,
    mean_difference,
    summary,
    thickness_um,
    write_boundaries_csv,
)
from napari_hdcyclegan.boundaries.detect import Step
from napari_hdcyclegan.boundaries.table import DEFAULT_BOUNDARY_COLOR
from napari_hdcyclegan.io import um_per_pixel

from .._reader import boundary_paths
from ._common import (
    BROWSE,
    WeightsChooser,
    checked_data,
    connect_layer_list,
    current_bscan,
    geometry,
    image_layer_choices,
    model_info,
    no_image_message,
    origin_at,
    save_with_dialog,
    set_image,
    status_label,
)
from ._dock import ViewerLinks
from ._workers import WorkerRunner, show_info
from .features import STAGES

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Shapes


def physical_um(layer: Image, axis: int) -> float | None:
    """µm per pixel of ``layer`` along ``axis`` when its unit is a length, else None (pixels)."""
    return um_per_pixel(layer.scale, [str(u) for u in layer.units], axis)


def detected_name(source: str, boundary: str) -> str:
    """Layer name of a detected line: never the name of the file's own (vendor) line layer."""
    return f"{source} {boundary} (detected)"


def vendor_heights(viewer: napari.Viewer, source: str, boundary: str,
                   shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """Heights (N, W) of the file's own ``boundary`` line: the reader's ``<source>_<boundary>`` layer,
    else the one layer (not a detection) with that boundary and heights of ``shape``; or None."""
    named = f"{source}_{boundary}"
    candidates = [viewer.layers[named]] if named in viewer.layers else [
        layer for layer in viewer.layers
        if layer.metadata.get("boundary") == boundary and "heights" in layer.metadata
        and "stage" not in layer.metadata
        and (shape is None or np.atleast_2d(layer.metadata["heights"]).shape == tuple(shape))]
    if len(candidates) != 1 or candidates[0].metadata.get("heights") is None:
        return None
    return np.atleast_2d(np.asarray(candidates[0].metadata["heights"], dtype=np.float64))


def detect_worker(data: np.ndarray, weights: str, device: str, stage: str | None,
                  channel: int | None, use_denoised: bool | None, calibration: dict[str, Any],
                  refine: bool = True, inner: bool = False, source: str = "image",
                  geo: dict[str, Any] | None = None) -> Generator[Step, None, dict[str, Any]]:
    """Worker: load the model, then run :func:`~napari_hdcyclegan.boundaries.iter_boundaries`,
    yielding its (done, total, message) steps; returns its result dict plus the model's info and,
    under ``"layers"``, the line layers of ``source`` (:func:`line_layers`, built here: building
    hundreds of paths would hold napari's main thread)."""
    from napari_hdcyclegan.engine import get_denoiser

    data = np.asarray(data)  # read here, off the main thread
    stack = data[None] if data.ndim == 2 else data
    yield 0, stack.shape[0], "loading the model"
    from napari_hdcyclegan.model.choice import boundary_weights

    denoiser = get_denoiser(boundary_weights(weights), device, data=stack)
    result = yield from iter_boundaries(stack, denoiser, stage, channel, use_denoised=use_denoised,
                                        calibration=calibration, refine=refine, inner=inner)
    result = {**result, **model_info(denoiser)}
    return {**result, "layers": line_layers(result, source, data.ndim, geo or {})}


def line_layers(result: dict[str, Any], source: str, ndim: int, geo: dict[str, Any]) -> list[Shapes]:
    """One Shapes layer of paths per detected line of ``result``, named :func:`detected_name`, with
    the run's settings, its heights and doubtful A-scans in the metadata, drawn over the source (``geo``)."""
    from napari.layers import Shapes

    lines = result["boundaries"]
    volume = ndim == 3
    meta = {"source_layer": source, "stage": result["stage"], "channel": result["channel"],
            "channel_how": result["how"], "provenance": result["provenance"]}
    doubtful = lines["doubtful"] if volume else lines["doubtful"][0]
    layers = []
    for name in (n for n in LAYER_BOUNDARIES if n in lines):
        paths = boundary_paths(lines[name], ndim)
        layers.append(Shapes(paths or None, shape_type="path", name=detected_name(source, name), ndim=ndim,
                             edge_color=BOUNDARY_COLORS.get(name, DEFAULT_BOUNDARY_COLOR), edge_width=1.5,
                             face_color="transparent", **geo,
                             metadata={**meta, "boundary": name, "heights": lines[name] if volume else lines[name][0],
                                       "doubtful": doubtful}))
    return layers


def _same_geometry(layer: Any, geo: dict[str, Any]) -> bool:
    """True when ``layer`` already has every field of :func:`geometry` ``geo``."""
    for key, value in geo.items():
        mine = getattr(layer, key)
        if key in ("units", "axis_labels"):
            if tuple(mine) != tuple(value):
                return False
        elif not np.array_equal(np.asarray(mine, dtype=float), np.asarray(value, dtype=float)):
            return False
    return True


class BoundaryWidget(ViewerLinks, WeightsChooser, WorkerRunner, QWidget):
    """Dock widget: ILM/RPE overlays, thickness map and profile, CSV export."""

    #: Cancel takes effect after the current b-scan or calibration step.
    cancelling_message = "Cancelling ..."

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from napari_hdcyclegan.engine import available_devices

        self.viewer = napari_viewer
        self.worker = None
        self._progress = None
        self._extra_weights: list[str] = []
        self.result: dict[str, Any] | None = None  # last finished run (kept when a run is cancelled)
        #: Keyword arguments of calibrate_boundary_channel when the model has no boundary channel.
        self.calibration: dict[str, Any] = {"n": 4, "seed": 0}

        self.layer_combo = ComboBox(label="Image", choices=self._layer_choices)
        self.weights_combo = self._make_weights_combo()
        self.device_combo = ComboBox(label="Device", choices=available_devices())
        self.auto_check = CheckBox(text="Channel from the model (calibrate if missing)", value=True)
        self.stage_combo = ComboBox(label="Stage", choices=list(STAGES), value="init", enabled=False,
                                    tooltip="the generator stage whose feature map marks ILM and RPE")
        self.channel_spin = SpinBox(label="Channel", value=0, min=0, max=1023, enabled=False,
                                   tooltip="the feature channel of that stage that marks ILM and RPE")
        self.denoised_check = CheckBox(text="Multiply with the denoised b-scan (trained model)",
                                       value=True, tooltip="an untrained model's output is noise: "
                                       "its input b-scan is used instead")
        self.skeleton_check = CheckBox(text="Paper's skeleton only (no optimal-path refinement)",
                                       value=False, tooltip="the paper's method as published, without "
                                       "the refinement (for comparison)")
        self.inner_check = CheckBox(text="Inner layers too (RNFL, IPL, INL, OPL, PR1, PR2)", value=False,
                                    tooltip="the six inner boundaries of Tian et al. 2015, eyepy's names; "
                                    "needs the optimal-path refinement")
        self.skeleton_check.changed.connect(lambda only: setattr(self.inner_check, "enabled", not only))
        self.run_button = PushButton(text="Detect")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", value=0, max=1)
        self.export_button = PushButton(text="Export CSV...", enabled=False)
        self.status = status_label()
        self.status.native.setMinimumHeight(4 * self.status.native.fontMetrics().height())
        self.controls = Container(widgets=[
            self.layer_combo, self.weights_combo, self.device_combo, self.auto_check,
            self.stage_combo, self.channel_spin, self.denoised_check, self.skeleton_check,
            self.inner_check,
            Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False),
            self.progress_bar, self.export_button, self.status,
        ])
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.axes = self.figure.add_subplot(111)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(180)
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.canvas)
        layout.addStretch(1)

        connect_layer_list(self.viewer, self.layer_combo, owner=self)
        self.weights_combo.changed.connect(self._on_weights_changed)
        self.auto_check.changed.connect(self._on_auto)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.export_button.changed.connect(self._export_dialog)
        self.link(self.viewer.dims.events.current_step, self.update_profile)

    # -- choices -------------------------------------------------------------------------------
    def _layer_choices(self, widget: Any = None) -> list[tuple[str, Image]]:
        return image_layer_choices(self.viewer, exclude=("_thickness", "_fmap", "_fmap_gallery"))

    def _on_auto(self, auto: bool) -> None:
        self.stage_combo.enabled = not auto
        self.channel_spin.enabled = not auto

    def set_channel(self, stage: str, channel: int) -> None:
        """Use ``(stage, channel)`` instead of the automatic choice."""
        self.auto_check.value = False
        self.stage_combo.value = stage
        self.channel_spin.value = int(channel)

    # -- run -----------------------------------------------------------------------------------
    def run(self, value: Any = None) -> Any:
        """Start detection over every b-scan of the chosen layer; returns the worker (or None)."""
        layer = self.layer_combo.value
        weights = self.weights_combo.value
        if layer is None:
            show_info(no_image_message(self.viewer, "Boundaries"))
            return None
        if weights in (None, BROWSE):
            show_info("Boundaries: choose a model first")
            return None
        if self._busy("Boundaries: a run is already in progress"):
            return None
        data = checked_data(layer, "Boundaries")  # read in the worker
        if data is None:
            return None
        stage = None if self.auto_check.value else str(self.stage_combo.value)
        channel = None if self.auto_check.value else int(self.channel_spin.value)
        refine = not self.skeleton_check.value
        args = (data, str(weights), str(self.device_combo.value), stage, channel,
                None if self.denoised_check.value else False, dict(self.calibration), refine,
                refine and bool(self.inner_check.value), layer.name, geometry(layer))
        total = 1 if data.ndim == 2 else data.shape[0]
        return self._start_worker(detect_worker, total, f"Boundaries of {layer.name}",
                                  partial(self._on_result, layer), self._on_error,
                                  f"Running on {layer.name} ...", *args)

    def _on_progress(self, value: tuple[int, int, str]) -> None:
        self.status.value = value[2]
        super()._on_progress(value)

    def _on_error(self, exc: BaseException) -> None:
        self.status.value = f"Boundaries failed: {exc}"

    # -- results -------------------------------------------------------------------------------
    def _on_result(self, source: Image, result: dict[str, Any]) -> None:
        """Add the overlays and the thickness layer of a finished run, show its summary."""
        if self._source_removed("Boundaries", source):
            return
        axial = physical_um(source, -2)
        unit = "µm" if axial is not None else "px"
        lines = result["boundaries"]
        meta = {"source_layer": source.name, "stage": result["stage"], "channel": result["channel"],
                "channel_how": result["how"], "provenance": result["provenance"]}
        for name in LAYER_BOUNDARIES:  # a new run replaces every line of the last one on this image
            layer_name = detected_name(source.name, name)
            if layer_name in self.viewer.layers:
                self.viewer.layers.remove(layer_name)
        geo = geometry(source)
        for layer in result.pop("layers"):
            if not _same_geometry(layer, geo):  # the source was moved or rescaled during the run
                for key, value in geo.items():
                    setattr(layer, key, value)
            layer.name = detected_name(source.name, layer.metadata["boundary"])  # the source may be renamed
            layer.metadata["source_layer"] = source.name
            self.viewer.add_layer(layer)
        thick = thickness_um(lines["ILM"], lines["RPE"], axial)
        self._add_thickness(source, thick, unit, meta)
        self.result = {**result, "source": source, "thickness": thick, "unit": unit, "axial_um": axial}
        if self.auto_check.value:  # show which channel the automatic choice used
            self.stage_combo.value = result["stage"]
            self.channel_spin.value = result["channel"]
        self.export_button.enabled = True
        untrained = "" if result["trained"] else " (UNTRAINED model)"
        stage_one = "" if result.get("refine", True) else ", skeleton only"
        self.status.value = (f"{result['stage']} channel {result['channel']}{untrained}{stage_one}: "
                             f"{summary(lines)}{self.vendor_difference(source, lines)}")
        self.update_profile()

    def vendor_difference(self, source: Image, lines: dict[str, np.ndarray]) -> str:
        """'; mean diff. to the file's lines: ILM 0.5 px, ...' when they are loaded, else ''."""
        parts = []
        for name in BOUNDARY_NAMES:
            vendor = vendor_heights(self.viewer, source.name, name, np.atleast_2d(lines[name]).shape)
            if vendor is None:
                continue
            diff, n = mean_difference(np.atleast_2d(lines[name]), np.atleast_2d(vendor))
            if n:
                parts.append(f"{name} {diff:.1f} px")
        return f"; mean diff. to the file's lines: {', '.join(parts)}" if parts else ""

    def _add_thickness(self, source: Image, thick: np.ndarray, unit: str, meta: dict) -> None:
        """``<input>_thickness``: (N, 1, W) for a volume ((1, W) for a b-scan), depth collapsed."""
        h = source.data.shape[-2]
        geo = geometry(source)
        # one pixel covering rows -0.5 .. h-0.5 of the source: centre at (h-1)/2, size h
        centre = [0.0] * source.ndim
        centre[-2] = (h - 1) / 2
        scale = list(geo["scale"])
        scale[-2] *= h
        geo.update(scale=tuple(scale), translate=origin_at(geo, centre))
        data = thick[:, None, :] if source.ndim == 3 else thick
        finite = thick[np.isfinite(thick)]
        limits = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if limits[1] <= limits[0]:
            limits = (limits[0], limits[0] + 1.0)
        set_image(self.viewer, f"{source.name}_thickness", data.astype(np.float32), colormap="turbo",
                  contrast_limits=limits, visible=False, **geo,
                  metadata={**meta, "thickness": thick, "unit": unit,
                            "layout": "depth collapsed; view b-scan x lateral for the en-face map"})

    def update_profile(self, event: Any = None) -> None:
        """Redraw the thickness profile of the b-scan under the dims slider."""
        self.axes.clear()
        r = self.result
        if r is None or r["source"] not in self.viewer.layers:
            self.canvas.draw_idle()
            return
        source = r["source"]
        index = current_bscan(self.viewer, source)
        lateral = physical_um(source, -1)
        x = np.arange(r["thickness"].shape[-1]) * (lateral if lateral is not None else 1.0)
        self.axes.plot(x, r["thickness"][index], color=BOUNDARY_COLORS["RPE"], lw=1)
        self.axes.set_xlabel("lateral (µm)" if lateral is not None else "A-scan")
        self.axes.set_ylabel(f"thickness ({r['unit']})")
        self.axes.set_title(f"{source.name}: b-scan {index}", fontsize=9)
        self.canvas.draw_idle()

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the last result as ``bscan,ascan,ILM,RPE,thickness_um`` CSV; returns the path."""
        if self.result is None:
            show_info("Boundaries: nothing to export yet")
            return None
        files = file_names(self.result["source"].metadata, np.atleast_2d(self.result["boundaries"]["ILM"]).shape[0])
        return write_boundaries_csv(path, self.result["boundaries"], self.result["axial_um"], files)

    def _export_dialog(self, value: Any = None) -> None:
        if self.result is None:
            return
        default = f"{self.result['source'].name}_boundaries.csv"
        save_with_dialog(self, "Export boundaries", default, "CSV (*.csv)", self.export_csv,
                         "Boundaries")


__all__ = ["BoundaryWidget", "EARLY_STAGES", "boundary_paths", "detect_worker", "detected_name",
           "physical_um", "vendor_heights"]
