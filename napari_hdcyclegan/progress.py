"""Progress and cancellation helpers shared by the engine and the baselines (no torch import)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None] | None
CancelFn = Callable[[], bool] | None


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
