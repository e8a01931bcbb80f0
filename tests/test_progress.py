"""drive(): the callback form of a generator of (done, total) steps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_hdcyclegan.baselines import apply_per_slice, iter_per_slice
from napari_hdcyclegan.progress import Cancelled, drive


def _steps(total: int, log: list):
    yield 0, total
    for i in range(total):
        log.append(i)
        yield i + 1, total
    return "result"


def test_reports_every_step_and_returns_the_result():
    seen, log = [], []
    assert drive(_steps(3, log), progress=lambda d, t: seen.append((d, t))) == "result"
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)] and log == [0, 1, 2]


def test_cancel_is_checked_between_steps_but_not_after_the_last():
    log: list = []
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        drive(_steps(3, log), cancel=lambda: next(calls))
    assert log == [0]  # cancelled before the second unit of work
    assert drive(_steps(1, []), cancel=lambda: False) == "result"


def test_iter_per_slice_is_what_apply_per_slice_returns():
    vol = np.random.default_rng(0).integers(0, 255, (3, 16, 16)).astype(np.uint8)
    steps = iter_per_slice(vol, lambda u: u * 0.5)
    assert next(steps) == (0, 3)
    out = drive(steps)
    assert out.dtype == np.uint8 and np.array_equal(out, apply_per_slice(vol, lambda u: u * 0.5))


def test_offset_reports_a_part_of_a_larger_computation():
    from napari_hdcyclegan.progress import offset

    def whole():
        first = yield from offset(_steps(2, []), 0, 5)
        second = yield from offset(_steps(3, []), 2, 5)
        return first + second

    seen: list = []
    assert drive(whole(), progress=lambda d, t: seen.append((d, t))) == "resultresult"
    assert seen == [(0, 5), (1, 5), (2, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_map_steps_maps_each_step_and_keeps_the_result():
    from napari_hdcyclegan.progress import map_steps

    steps = map_steps(_steps(2, []), lambda s: (s[0], s[1], f"b-scan {s[0]}"))
    assert list(steps) == [(0, 2, "b-scan 0"), (1, 2, "b-scan 1"), (2, 2, "b-scan 2")]
    assert drive(map_steps(_steps(2, []), lambda s: (2 * s[0], 2 * s[1]))) == "result"
