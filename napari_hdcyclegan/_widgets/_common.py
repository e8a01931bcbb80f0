"""Helpers shared by the dock widgets: layer choices, derived-layer geometry, weights choices, and
how long work runs: :func:`start_worker` (napari's ``create_worker``, for every worker of every
widget), :class:`WorkerRunner` (one long run with progress and Cancel) and :class:`LatestRequest`
(live previews: debounced, one at a time, latest request wins).

Everything here runs on the Qt main thread (it reads viewer state); compute lives in the core.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from qtpy.QtCore import QObject, QTimer

#: Value of the weights combo item that opens a folder dialog.
BROWSE = "__browse__"
#: Every widget whose weights combo was filled (weakly held), for refresh_weights_choosers().
_CHOOSERS: weakref.WeakSet[Any] = weakref.WeakSet()


def image_layer_choices(viewer: napari.Viewer, exclude: tuple[str, ...] = ()
                        ) -> list[tuple[str, Image]]:
    """(name, layer) of every grayscale, single-scale 2D/3D image layer whose name does not end
    with one of ``exclude``, for a magicgui ComboBox."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in viewer.layers
            if isinstance(layer, Image) and not layer.rgb and not layer.multiscale
            and layer.ndim in (2, 3) and not layer.name.endswith(exclude)]


def no_image_message(viewer: napari.Viewer, what: str) -> str:
    """Why there is no layer to run ``what`` on: "add or open ..." in an empty viewer, else which of
    its layers cannot be used and why (an RGB, multiscale, 4D or non-image layer)."""
    from napari.layers import Image

    if not len(viewer.layers):
        return f"{what}: add or open an image layer first"
    reasons = []
    for layer in viewer.layers:
        if not isinstance(layer, Image):
            kind = type(layer).__name__
            reasons.append(f"{layer.name!r} is a{'n' if kind[0] in 'AEIOU' else ''} {kind} layer")
        elif layer.rgb or layer.multiscale or layer.ndim not in (2, 3):
            how = "RGB" if layer.rgb else "multiscale" if layer.multiscale else f"{layer.ndim}D"
            reasons.append(f"{layer.name!r} is {how}")
    shown = " (" + "; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else "") + ")" if reasons else ""
    return (f"{what}: no grayscale b-scan or volume layer to run on{shown}; open the scan with "
            "the napari-hdcyclegan reader, which reads colour exports as gray")


def connect_layer_list(viewer: napari.Viewer, *combos: Any, owner: Any = None
                       ) -> Callable[..., None]:
    """Refresh magicgui combos whenever layers are added, removed or reordered; returns the
    callback. With an ``owner`` (a ``_dock.ViewerLinks`` widget) closing its dock disconnects it."""
    def refresh(event: Any = None) -> None:
        for combo in combos:
            combo.reset_choices()

    events = viewer.layers.events
    for emitter in (events.inserted, events.removed, events.reordered):
        if owner is not None:
            owner.link(emitter, refresh)
        else:
            emitter.connect(refresh)
    return refresh


def layer_array(layer: Image) -> np.ndarray:
    """The layer's data as a numpy array (read on the main thread), or a clear ValueError."""
    if layer.multiscale or layer.rgb:
        raise ValueError(f"layer {layer.name!r}: multiscale and RGB images are not supported")
    data = np.asarray(layer.data)
    if data.ndim not in (2, 3):
        raise ValueError(f"layer {layer.name!r} has shape {data.shape}; expected a 2D b-scan or a "
                         "3D volume with b-scans on axis 0")
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ValueError(f"layer {layer.name!r} has dtype {data.dtype}; expected a numeric image")
    return data


def checked_array(layer: Image, what: str) -> np.ndarray | None:
    """:func:`layer_array`, or None after an error notification prefixed with ``what``."""
    try:
        return layer_array(layer)
    except ValueError as exc:
        show_error(f"{what}: {exc}")
        return None


def geometry(source: Image) -> dict[str, Any]:
    """scale, translate, units and axis_labels of ``source``, to copy onto a derived layer."""
    return {"scale": tuple(source.scale), "translate": tuple(source.translate),
            "units": tuple(source.units), "axis_labels": tuple(source.axis_labels)}


def kept_metadata(source: Image) -> dict[str, Any]:
    """The fields of ``source``'s metadata that an output in its intensity domain keeps (intensity
    domain, laterality, scan pattern: ``io.tiff_block.KEPT_FIELDS``, as the command line's outputs
    do), so that the plugin's writer saves them and its reader reads the output as it read the input."""
    from napari_hdcyclegan.io.tiff_block import kept_fields

    return kept_fields(dict(source.metadata or {}))


def slice_geometry(source: Image, index: int) -> dict[str, Any]:
    """Geometry of a (1, H, W) layer showing b-scan ``index`` of a 3D ``source`` at its place."""
    geo = geometry(source)
    translate = list(geo["translate"])
    translate[0] += index * geo["scale"][0]
    geo["translate"] = tuple(translate)
    return geo


def place_bscan(source: Image, index: int, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(data, geometry) of a 2D result drawn at b-scan ``index`` of ``source`` (as is for 2D)."""
    if source.ndim == 3:
        return image[None], slice_geometry(source, index)
    return image, geometry(source)


def bscan_under_slider(viewer: napari.Viewer, layer: Image) -> int:
    """Index on axis 0 of ``layer`` under the dims slider, unclipped (may lie outside the layer)."""
    point = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim:]
    return int(np.round(layer.world_to_data(point)[0]))


def current_bscan(viewer: napari.Viewer, layer: Image) -> int:
    """Index on axis 0 of the b-scan of a 3D ``layer`` under the dims slider (0 for a 2D layer)."""
    if layer.ndim != 3:
        return 0
    return int(np.clip(bscan_under_slider(viewer, layer), 0, layer.data.shape[0] - 1))


def set_image(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs: Any) -> Image:
    """Replace the data and properties of image layer ``name``, or add it when it does not exist."""
    from napari.layers import Image

    if name in viewer.layers and isinstance(viewer.layers[name], Image):
        layer = viewer.layers[name]
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def weights_choices(extra: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, value) for the weights combo: shipped models, user models, folders browsed, Browse...

    The first entry, the default, picks a shipped model per input by its noise level; when no
    trained model is shipped the engine falls back to random weights, and the label says so.
    """
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir, shipped_models
    from napari_hdcyclegan.model.choice import AUTO, AVERAGED_MODEL, FEW_FRAME_MODEL, SINGLE_FRAME_MODEL
    from napari_hdcyclegan.model.registry import list_models

    shipped = shipped_models()
    auto = f"auto: by noise level and texture ({AVERAGED_MODEL}, {SINGLE_FRAME_MODEL} or {FEW_FRAME_MODEL})"
    if AVERAGED_MODEL not in shipped:
        auto = f"auto: {AVERAGED_MODEL} (UNTRAINED fallback, random weights)"
    choices: list[tuple[str, str]] = [(auto, AUTO)]  # the default first
    for name in shipped:
        try:
            trained = read_config(resolve_model_dir(name)).trained
        except ValueError:  # a broken shipped config is reported when it is loaded
            trained = True
        choices.append((name if trained else f"{name} (UNTRAINED, random weights)", name))
    choices += [(f"{e.name} (yours)", e.name) for e in list_models() if e.origin == "user"]
    for path in extra:
        choices.append((f"{Path(path).name} ({path})", str(path)))
    choices.append(("Browse...", BROWSE))
    return choices


def show_error(message: str) -> None:
    """A napari error notification (the user sees it in the viewer, not as a traceback)."""
    from napari.utils.notifications import show_error as _show_error

    _show_error(message)


def show_info(message: str) -> None:
    """A napari info notification."""
    from napari.utils.notifications import show_info as _show_info

    _show_info(message)


def save_with_dialog(widget: Any, caption: str, default: str, file_filter: str,
                     write: Callable[[str], Any], what: str) -> None:
    """Ask for a file name and ``write(path)``; the widget's status line names the result."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(widget, caption, default, file_filter)
    if path:
        try:
            widget.status.value = f"Exported {write(path)}"
        except (OSError, ValueError) as exc:
            show_error(f"{what}: export failed: {exc}")


def model_info(denoiser: Any, choice: Any = None, data: Any = None) -> dict[str, Any]:
    """provenance, trained and name of a Denoiser, for a worker's result dict; ``choice`` (from
    :func:`napari_hdcyclegan.engine.choose_denoiser`) says why ``auto`` chose it for this request;
    ``data`` (the input) records the gains dim b-scans were lifted by."""
    name = f"{denoiser.name} (auto: {choice.reason})" if choice is not None else denoiser.name
    return {"provenance": denoiser.provenance(choice, data), "trained": bool(denoiser.trained), "name": name}


def debounce_timer(parent: QObject, delay_ms: int, slot: Callable[[], Any]) -> QTimer:
    """A single-shot timer calling ``slot``; each ``start()`` restarts it (debouncing)."""
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(delay_ms)
    timer.timeout.connect(slot)
    return timer


def _relay(exc: BaseException) -> None:
    """A worker's exception, on the main thread: a user error (:class:`HDCycleGANError`: bad input,
    bad model folder, unusable device) as a one-line error notification; anything else (a bug) is
    re-raised, so napari's notification carries its traceback."""
    from napari_hdcyclegan.errors import HDCycleGANError

    if isinstance(exc, HDCycleGANError):
        show_error(str(exc))
        return
    raise exc


def start_worker(job: Callable[..., Any], *args: Any, **slots: Callable[..., Any]) -> Any:
    """napari's ``create_worker(job, *args, _connect=slots, _start_thread=True)``, except that the
    worker's exception still reaches napari's notification manager when an ``errored`` slot is given:
    a user error (:class:`~napari_hdcyclegan.errors.HDCycleGANError`) as one line, a bug with its
    traceback (:func:`_relay`).

    ``job`` is a function or generator function (e.g. a core ``iter_*`` yielding ``(done, total)``,
    which ``quit()`` stops between steps); ``slots`` maps signal names (``yielded``, ``returned``,
    ``errored``, ``aborted``, ``finished``) to callables run on the main thread. Returns the
    started worker.
    """
    from napari.qt.threading import create_worker

    connect: dict[str, Callable[..., Any] | list[Callable[..., Any]]] = dict(slots)
    if "errored" in slots:
        # create_worker re-raises on the main thread (napari's notification, with the traceback) only
        # when no errored slot is given; the widgets' slots add to that notification, not replace it.
        connect["errored"] = [_relay, slots["errored"]]
    return create_worker(job, *args, _connect=connect, _start_thread=True)


class LatestRequest:
    """"Latest request wins, debounced" for a live preview that follows a slider.

    :meth:`schedule` (on every slider move) calls ``run`` once the requests have rested
    ``delay_ms``. ``run`` asks :meth:`next` for a ticket: None while a worker is running (the
    request is then kept and ``run`` is called again when that worker finishes, so only the latest
    of the requests made meanwhile runs); else it starts its worker with :meth:`launch` and its
    result handler drops the result unless :meth:`is_latest` says no newer request was made since.

    Attributes
    ----------
    worker : napari worker or None
        The running worker.
    pending : bool
        Whether a request waits for the running worker to finish.
    timer : QTimer
        The debounce timer.
    """

    def __init__(self, parent: QObject, delay_ms: int, run: Callable[[], Any]) -> None:
        self.timer = debounce_timer(parent, delay_ms, run)
        self._run = run
        self.worker: Any = None
        self.pending = False
        self._ticket = 0

    def schedule(self) -> None:
        """(Re)start the debounce timer."""
        self.timer.start()

    def next(self) -> int | None:
        """A ticket for a new request, or None when it must wait for the running worker."""
        self._ticket += 1
        if self.worker is not None:
            self.pending = True
            return None
        return self._ticket

    def launch(self, job: Any, *args: Any, **slots: Any) -> Any:
        """:func:`start_worker` for the request holding the latest ticket; returns the worker."""
        self.worker = start_worker(job, *args, finished=self._finished, **slots)
        return self.worker

    def is_latest(self, ticket: int) -> bool:
        """Whether no request was made after the one holding ``ticket``."""
        return ticket == self._ticket

    def mark_pending(self) -> None:
        """Run again once the running worker finishes (e.g. its result came back stale)."""
        self.pending = True

    def drop(self) -> None:
        """No scheduled or waiting request any more; results still in flight are stale."""
        self.timer.stop()
        self._ticket += 1
        self.pending = False

    def _finished(self) -> None:
        self.worker = None
        if self.pending:
            self.pending = False
            self._run()


def refresh_weights_choosers() -> None:
    """Re-read the model lists of every open weights chooser (e.g. after a model was exported)."""
    for chooser in list(_CHOOSERS):
        try:
            chooser.weights_combo.reset_choices()
        except RuntimeError:  # its Qt widget was already deleted
            _CHOOSERS.discard(chooser)


class WeightsChooser:
    """Mixin for a QWidget with ``weights_combo`` (shipped models, browsed folders, Browse...)."""

    weights_combo: Any
    _extra_weights: list[str]

    def _weights_choices(self, widget: Any = None) -> list[tuple[str, str]]:
        _CHOOSERS.add(self)  # so that refresh_weights_choosers() reaches every open chooser
        return weights_choices(self._extra_weights)

    def set_weights(self, path: str | Path) -> None:
        """Select a model directory (what Browse... does), adding it to the choices."""
        path = str(path)
        if path not in self._extra_weights:
            self._extra_weights.append(path)
            self.weights_combo.reset_choices()
        self.weights_combo.value = path

    def _browse_weights(self) -> bool:
        """Ask for a model directory and select it; False when the dialog was cancelled."""
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(
            self,  # type: ignore[arg-type]  # the mixin is always used on a QWidget
            "Model directory (config.json + model.safetensors)")
        if folder:
            self.set_weights(folder)
        return bool(folder)

    def _on_weights_changed(self, value: str) -> None:
        if value == BROWSE and not self._browse_weights():
            self.weights_combo.reset_choices()


class WorkerRunner:
    """Mixin for a QWidget running one long worker at a time: run/cancel buttons, a progress bar,
    napari progress and a status line (``worker``, ``run_button``, ``cancel_button``,
    ``progress_bar``, ``status``, ``_progress``)."""

    viewer: Any
    worker: Any
    run_button: Any
    cancel_button: Any
    progress_bar: Any
    status: Any
    _progress: Any
    #: Status line after a cancelled run.
    aborted_message = "Cancelled; the previous result is unchanged"
    #: Status line while a cancelled run finishes its current step.
    cancelling_message = "Cancelling after the current batch ..."

    def _busy(self, message: str) -> bool:
        """The run guard: True (and ``message`` as a notification) while a run is in progress."""
        if self.worker is None:
            return False
        show_info(message)
        return True

    def _source_removed(self, what: str, source: Any) -> bool:
        """Whether the input layer ``source`` of a finished run left the viewer meanwhile; if so the
        notification and the status line say that its result was dropped."""
        if source in self.viewer.layers:
            return False
        message = f"{what}: layer {source.name!r} was removed during the run; result dropped"
        show_info(message)
        self.status.value = message
        return True

    def cancel(self) -> None:
        """Stop the running worker after its current step; the previous result is kept."""
        if self.worker is not None:
            self.worker.quit()
            self.status.value = self.cancelling_message

    def _start_worker(self, job: Any, total: int, description: str, returned: Callable,
                      errored: Callable, status: str, *args: Any) -> Any:
        """Run ``job`` (a generator function yielding (done, total, ...), called with ``args``) with
        :func:`start_worker`, wired to the progress and buttons."""
        from napari.utils import progress

        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = 0
        self._progress = progress(total=max(total, 1), desc=description)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = status
        self.worker = start_worker(job, *args, yielded=self._on_progress, returned=returned, errored=errored,
                                   aborted=self._on_aborted, finished=self._on_finished)
        return self.worker

    def _on_progress(self, value: tuple) -> None:
        done, total = value[0], value[1]
        self.progress_bar.max = max(total, 1)
        self.progress_bar.value = done
        if self._progress is not None:
            self._progress.total = max(total, 1)  # a run may have stages (adaptation, then b-scans)
            self._progress.n = done
            self._progress.refresh()

    def _on_aborted(self) -> None:
        self.status.value = self.aborted_message

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        if self._progress is not None:
            self._progress.close()
            self._progress = None
