"""How long work runs in the dock widgets: :func:`start_worker` (napari's ``create_worker``, for every
worker of every widget), :class:`WorkerRunner` (one long run with progress and Cancel),
:class:`LatestRequest` (live previews: debounced, one at a time, latest request wins) and the
notifications a worker's outcome ends in.

Everything here runs on the Qt main thread; compute lives in the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qtpy.QtCore import QObject, QTimer


def show_error(message: str) -> None:
    """A napari error notification (the user sees it in the viewer, not as a traceback)."""
    from napari.utils.notifications import show_error as _show_error

    _show_error(message)


def show_info(message: str) -> None:
    """A napari info notification."""
    from napari.utils.notifications import show_info as _show_info

    _show_info(message)


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
