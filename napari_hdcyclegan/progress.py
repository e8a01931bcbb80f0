"""Progress and cancellation helpers shared by the engine and the baselines (no torch import)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar, cast

ProgressFn = Callable[[int, int], None] | None
CancelFn = Callable[[], bool] | None
#: A long computation as a generator: yields ``(done, total)``, returns its result.
T = TypeVar("T")
Steps = Generator[tuple[int, int], None, T]
Y = TypeVar("Y")
Z = TypeVar("Z")


class Cancelled(Exception):
    """Raised when a long computation is stopped because ``cancel()`` returned True."""


def check_cancel(cancel: CancelFn) -> None:
    """Raise :class:`Cancelled` if a ``cancel`` callback is given and returns True."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the user")


def report(progress: ProgressFn, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback is given."""
    if progress is not None:
        progress(int(done), int(total))


def map_steps(steps: Generator[Y, None, T], step: Callable[[Y], Z]) -> Generator[Z, None, T]:
    """Run ``steps`` to its result, yielding ``step(value)`` for each value it yields."""
    while True:
        try:
            value = next(steps)
        except StopIteration as stop:
            return cast(T, stop.value)
        yield step(value)


def offset(steps: Steps[T], before: int, total: int) -> Steps[T]:
    """``steps`` as one part of a larger computation: yields ``(before + done, total)``, returns its
    result (``results = yield from offset(part, done_so_far, total)``)."""
    return map_steps(steps, lambda s: (before + s[0], total))


def drive(steps: Steps[T], progress: ProgressFn = None, cancel: CancelFn = None) -> T:
    """Run a generator of ``(done, total)`` steps to its result: the callback form of an ``iter_*``.

    Parameters
    ----------
    steps : generator
        Yields ``(done, total)`` (first ``(0, total)``, then after each unit of work) and returns
        the result. A napari ``thread_worker`` can run the same generator directly.
    progress : callable, optional
        ``progress(done, total)``, called at every step.
    cancel : callable, optional
        Checked between steps (not after the last); True raises :class:`Cancelled`.

    Returns
    -------
    The generator's return value.
    """
    try:
        while True:
            done, total = next(steps)
            report(progress, done, total)
            if done < total:
                check_cancel(cancel)
    except StopIteration as stop:
        return stop.value

