"""Train / fine-tune dock widget: HDcycleGAN on your own unpaired high-noise and low-noise scans.

The widget gathers inputs (image layers or folders per domain), writes them as TIFF into a run
folder under the per-user data directory, and runs ``python -m training.fit`` in a subprocess
(:mod:`training.job`), so the GUI stays responsive and GPU memory returns when the run ends. A timer
reads the growing ``log.csv`` / ``val.csv`` (:mod:`training.runlog`) into live plots, and each new
``OUT/last`` checkpoint refreshes ``<layer>_train_preview``: G_L of that checkpoint on the b-scan
under the dims slider. Stop terminates the run (checkpoints stay), Resume continues exactly, a
crashed run shows its last output lines. Export writes the model into the user models directory
(:mod:`training.publish`) and refreshes every weights chooser.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, LineEdit, PushButton, SpinBox
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from ._common import (
    BROWSE,
    WeightsChooser,
    connect_layer_list,
    current_bscan,
    image_layer_choices,
    layer_array,
    place_bscan,
    refresh_weights_choosers,
    set_image,
    status_label,
    weights_choices,
)
from ._dock import ViewerLinks
from ._workers import show_error, start_worker

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Value of the "start from" item that trains from random weights.
SCRATCH = "__scratch__"
POLL_MS = 500
#: Redraw the plots at most this often (seconds).
REDRAW_S = 1.0


def prepare_run(spec: Any, hn: Any, ln: Any) -> dict[str, Any]:
    """Worker: read folders, check both domains and write them into the run folder.

    Returns ``{"error": message}`` for input the run cannot use (shown in the widget).
    """
    from training.job import prepare_data, read_folder_images

    try:
        hn_images = read_folder_images(hn) if isinstance(hn, str) else hn
        ln_images = read_folder_images(ln) if isinstance(ln, str) else ln
        n_hn, n_ln = prepare_data(spec, hn_images, ln_images)
    except (OSError, ValueError) as exc:  # JobError is a ValueError
        return {"error": str(exc)}
    return {"spec": spec, "n_hn": n_hn, "n_ln": n_ln}


def preview_worker(model_dir: str, bscan: np.ndarray, step: int) -> dict[str, Any] | None:
    """Worker: G_L of a checkpoint on one b-scan; None when the checkpoint was being replaced."""
    from training.runlog import preview_bscan

    try:
        return {"image": preview_bscan(model_dir, bscan, "cpu"), "step": step}
    except (OSError, ValueError, RuntimeError):
        return None


class TrainWidget(ViewerLinks, WeightsChooser, QWidget):
    """Dock widget: train or fine-tune HDcycleGAN from layers or folders, watch it, export the model."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        from napari_hdcyclegan.engine import available_devices

        from ._dock import scrollable
        from ._train_plots import TrainPlots

        self.viewer = napari_viewer
        self._extra_weights: list[str] = []
        self.job: Any = None
        self.run_log: Any = None
        self.prepare: Any = None
        self.preview: Any = None
        self._preview_step: int | None = None
        self._drawn = 0.0

        self.hn_layer = ComboBox(label="HN layer", choices=self._layer_choices, nullable=True,
                                 tooltip="high-noise scans (e.g. 12-frame averages)")
        self.hn_folder = FileEdit(label="or HN folder", mode="d", value="")  # type: ignore[arg-type]
        self.ln_layer = ComboBox(label="LN layer", choices=self._layer_choices, nullable=True,
                                 tooltip="low-noise scans (e.g. 60-frame averages), unpaired")
        self.ln_folder = FileEdit(label="or LN folder", mode="d", value="")  # type: ignore[arg-type]
        self.validation = ComboBox(label="Validation", choices=[
            ("none (export the last checkpoint)", "none"), ("simulated pairs (PSNR/SSIM, best)", "sim"),
            ("your pairs (folders below; PSNR/SSIM, best)", "pairs")])
        self.val_noisy = FileEdit(label="Validation noisy", mode="d", value="",  # type: ignore[arg-type]
                                  tooltip="folder of noisy b-scans held back from training")
        self.val_reference = FileEdit(label="Validation reference", mode="d", value="",  # type: ignore[arg-type]
                                      tooltip="folder of their low-noise references (same order by name)")
        self.weights_combo = self._make_weights_combo(label="Start from")
        self.steps_spin = SpinBox(label="Steps", value=300, min=1, max=1_000_000,
                                  tooltip="optimiser steps of the run (Stop keeps the checkpoints; Resume goes on)")
        self.minutes_spin = FloatSpinBox(label="Minutes (0: no limit)", value=0.0, min=0.0, max=10_000.0)
        self.device_combo = ComboBox(label="Device", choices=available_devices())
        self.crop_spin = SpinBox(label="Crop", value=128, min=16, max=1024, step=16,
                                 tooltip="side of the square patches cut from the b-scans for each step (px)")
        self.batch_spin = SpinBox(label="Batch", value=2, min=1, max=64, tooltip="patches per step")
        self.width_spin = SpinBox(label="Width (scratch)", value=16, min=2, max=64,
                                  tooltip="generator width when training from scratch")
        self.preview_layer = ComboBox(label="Preview layer", choices=self._layer_choices, nullable=True)
        self.every_spin = SpinBox(label="Preview every", value=25, min=1, max=100_000,
                                  tooltip="steps between checkpoints (and preview refreshes)")
        self.name_edit = LineEdit(label="Model name", value="my-model")
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.resume_button = PushButton(text="Resume", enabled=False)
        self.export_button = PushButton(text="Export", enabled=False)
        self.status = status_label()
        self.plots = TrainPlots()

        self.controls = Container(widgets=[
            self.hn_layer, self.hn_folder, self.ln_layer, self.ln_folder, self.validation,
            self.val_noisy, self.val_reference,
            self.weights_combo, self.steps_spin, self.minutes_spin, self.device_combo, self.crop_spin,
            self.batch_spin, self.width_spin, self.preview_layer, self.every_spin, self.name_edit,
            Container(widgets=[self.start_button, self.stop_button, self.resume_button, self.export_button],
                      layout="horizontal", labels=False),
            self.status,
        ])
        scrollable(self, self.controls.native, self.plots)  # docks beside the others on a laptop screen

        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        connect_layer_list(self.viewer, self.hn_layer, self.ln_layer, self.preview_layer, owner=self)
        # closing the viewer deletes the dock without a closeEvent; the lambda must not hold self
        self._jobs: list[Any] = []
        self.destroyed.connect(lambda *_, jobs=self._jobs: _stop_all(jobs, "napari closed the widget"))
        self.weights_combo.changed.connect(self._on_weights_changed)
        self.device_combo.changed.connect(self._on_device_changed)
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.resume_button.changed.connect(self.resume)
        self.export_button.changed.connect(self.export)

    # -- choices -------------------------------------------------------------------------------
    def _layer_choices(self, widget: Any = None) -> list[tuple[str, Image]]:
        return image_layer_choices(self.viewer, exclude=("_train_preview",))

    def _weights_choices(self, widget: Any = None) -> list[tuple[str, str]]:
        super()._weights_choices(widget)  # registers this chooser for refreshes
        return [("scratch (random weights)", SCRATCH)] + weights_choices(self._extra_weights)

    def _on_device_changed(self, device: str) -> None:
        from training.job import defaults_for

        sizes = defaults_for(device)
        self.crop_spin.value, self.batch_spin.value = sizes["crop"], sizes["batch"]

    # -- start ---------------------------------------------------------------------------------
    def _source(self, layer: Image | None, folder: Any) -> Any:
        """A folder path (str) when one is set, else the layer's array, else an empty list."""
        text = str(folder or "").strip()
        if text and text != ".":
            return text
        return [layer_array(layer)] if layer is not None else []

    def spec(self, out: str) -> Any:
        """The JobSpec of the current settings, for run folder ``out``."""
        from training.job import JobSpec

        start = self.weights_combo.value
        return JobSpec(out=out, name=self.name_edit.value.strip(), steps=int(self.steps_spin.value),
                       minutes=float(self.minutes_spin.value), device=self.device_combo.value,
                       crop=int(self.crop_spin.value), batch=int(self.batch_spin.value),
                       width=int(self.width_spin.value), validation=self.validation.value,
                       val_noisy=_folder(self.val_noisy), val_reference=_folder(self.val_reference),
                       init_from="" if start in (SCRATCH, BROWSE) else str(start),
                       ckpt_every=int(self.every_spin.value))

    def start(self, extra: dict | None = None) -> Any:
        """Check the inputs and start a new run in a fresh run folder; returns the preparing worker."""
        from napari_hdcyclegan.model.registry import check_model_name, user_runs_dir

        if self._busy():
            return self._fail("a run is already in progress: stop it first")
        try:
            name = check_model_name(self.name_edit.value.strip())
            hn = self._source(self.hn_layer.value, self.hn_folder.value)
            ln = self._source(self.ln_layer.value, self.ln_folder.value)
        except ValueError as exc:
            return self._fail(str(exc))
        spec = self.spec(str(user_runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"))
        spec.extra.update(extra or {})
        self._set_buttons(running=True)
        self.status.value = "Checking and writing the training data ..."
        self.prepare = start_worker(prepare_run, spec, hn, ln, returned=self._launch,
                                    errored=self._crashed, finished=self._prepared)
        return self.prepare

    def _prepared(self) -> None:
        self.prepare = None
        if self.job is None or self.job.state != "running":
            self._set_buttons(running=False)

    def _launch(self, result: dict[str, Any]) -> None:
        from training.job import TrainingJob
        from training.runlog import RunLog

        if "error" in result:
            self._fail(result["error"])
            return
        spec = result["spec"]
        self.job, self.run_log, self._preview_step = TrainingJob(spec), RunLog(spec.out), None
        self._jobs[:] = [self.job]
        self.plots.clear()
        try:
            self.job.start()
        except (OSError, ValueError) as exc:
            self._fail(f"could not start training: {exc}")
            return
        self._set_buttons(running=True)
        self.status.value = (f"Training on {result['n_hn']} HN and {result['n_ln']} LN b-scans "
                             f"in {spec.out} ...")
        self.timer.start()

    # -- while it runs -------------------------------------------------------------------------
    def poll(self) -> None:
        """Timer tick: process state, new log rows, a new checkpoint for the preview."""
        if self.job is None:
            return
        state = self.job.poll()
        if self.run_log.update() or state != "running":
            if time.monotonic() - self._drawn > REDRAW_S or state != "running":
                self.plots.update_from(self.run_log)
                self._drawn = time.monotonic()
        self._maybe_preview()
        if state == "running":
            total = self.job.spec.steps
            self.status.value = f"Training: step {self.run_log.last_step} (adversarial steps: {total})"
        else:
            self._ended(state)

    def _maybe_preview(self) -> None:
        from training.runlog import checkpoint_folder, checkpoint_step

        layer = self.preview_layer.value
        folder = checkpoint_folder(self.job.out, "last")
        step = checkpoint_step(folder)
        if layer is None or step is None or step == self._preview_step or self.preview is not None:
            return
        index = current_bscan(self.viewer, layer)
        bscan = np.asarray(layer.data[index] if layer.ndim == 3 else layer.data)
        self._preview_step = step
        self.preview = start_worker(preview_worker, str(folder), bscan, step,
                                    returned=lambda result: self._show_preview(layer, index, result),
                                    finished=self._preview_done)

    def _preview_done(self) -> None:
        self.preview = None

    def _show_preview(self, layer: Image, index: int, result: dict[str, Any] | None) -> None:
        if result is None:
            self._preview_step = None  # try again at the next tick
            return
        if layer not in self.viewer.layers:
            return
        data, geo = place_bscan(layer, index, result["image"])
        set_image(self.viewer, f"{layer.name}_train_preview", data, colormap="gray",
                  contrast_limits=tuple(layer.contrast_limits),
                  metadata={"train_step": result["step"], "source_layer": layer.name}, **geo)

    def _ended(self, state: str) -> None:
        from training.runlog import checkpoint_folder, checkpoint_step

        self.timer.stop()
        self._set_buttons(running=False)
        last = checkpoint_step(checkpoint_folder(self.job.out, "last"))
        best = checkpoint_step(checkpoint_folder(self.job.out, "best"))
        kept = f"checkpoint at step {last}" + (f", best at step {best}" if best is not None else "")
        if state == "finished":
            self.status.value = f"Finished at step {self.run_log.last_step}; {kept}. Export to use it."
        elif state == "stopped":
            self.status.value = (f"Stopped ({self.job.reason}) at step {self.run_log.last_step}; {kept} "
                                 "kept. Resume continues from the checkpoint.")
        else:
            self.status.value = f"Training failed ({self.job.reason}):\n{self.job.stderr_tail(8)}"
            show_error(f"Train: training failed ({self.job.reason}); see the widget for its last output")

    # -- buttons ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Terminate the run; its checkpoints stay."""
        if self.job is not None and self.job.state == "running":
            self.job.stop()
            self.poll()

    def resume(self) -> None:
        """Continue the last run exactly from its last checkpoint."""
        from training.runlog import RunLog

        if self.job is None or not self.job.can_resume():
            self._fail("nothing to resume: no stopped run with a checkpoint")
            return
        try:
            self.job.start(resume=True)
        except (OSError, ValueError) as exc:
            self._fail(f"could not resume: {exc}")
            return
        self.run_log, self._preview_step = RunLog(self.job.out), None
        self._set_buttons(running=True)
        self.status.value = "Resuming ..."
        self.timer.start()

    def export(self) -> Any:
        """Export the run as a user model named as in the widget; it appears in every chooser."""
        from training.publish import export_run

        if self.job is None or self.job.state == "running":
            return self._fail("export needs a run that has ended (stop it first)")
        try:
            target = export_run(self.job.out, self.name_edit.value.strip())
        except (OSError, ValueError) as exc:
            return self._fail(f"export failed: {exc}")
        refresh_weights_choosers()
        self.status.value = f"Exported {target.name} to {target}; it is in every weights chooser now"
        return target

    # -- helpers ---------------------------------------------------------------------------------
    def _busy(self) -> bool:
        return self.prepare is not None or (self.job is not None and self.job.state == "running")

    def _set_buttons(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.stop_button.enabled = running
        resumable = not running and self.job is not None and self.job.can_resume()
        self.resume_button.enabled = resumable
        self.export_button.enabled = resumable

    def _fail(self, message: str) -> None:
        self.status.value = f"Train: {message}"
        show_error(f"Train: {message}")

    def _crashed(self, exc: BaseException) -> None:
        # start_worker already relays the exception to napari's notifications: a second would double it
        self.status.value = f"Train: {exc}"

    def on_links_closed(self) -> None:
        """Dock closed (its close button unparents the widget): the run stops, checkpoints stay."""
        self.timer.stop()
        _stop_all(self._jobs, "the Train dock was closed")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Closing the widget stops a running training process."""
        self.stop()
        super().closeEvent(event)


def _stop_all(jobs: list[Any], reason: str) -> None:
    """Stop the running jobs of ``jobs`` (a training process must not outlive its widget)."""
    for job in jobs:
        job.stop(reason)


def _folder(edit: Any) -> str:
    """A FileEdit's folder as typed; "" when none was chosen (its value would be the working folder)."""
    text = str(edit.line_edit.value or "").strip()
    return "" if text in ("", ".") else text
