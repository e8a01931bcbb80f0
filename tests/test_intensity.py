"""intensity: where a b-scan's median lies in its range, and what that says of linear intensities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_hdcyclegan.intensity import LINEAR_LEVEL_BELOW, inverse_log_display, log_display, looks_linear, median_level

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_a_log_display_sits_mid_range_and_its_linear_intensities_near_zero(linear_scan) -> None:
    linear = linear_scan()
    display = log_display(linear)
    assert 0.2 < median_level(display) < 0.5
    assert median_level(linear) < LINEAR_LEVEL_BELOW / 2
    assert looks_linear(display) is None
    assert looks_linear(linear) == pytest.approx(median_level(linear))
    assert looks_linear(np.round(65535 * linear / linear.max()).astype(np.uint16)) is not None
    # rounded to 8 bits most pixels are 0, as on a dark display scan: no claim either way
    assert np.isnan(median_level(np.round(255 * linear / linear.max()).astype(np.uint8)))


def test_the_level_ignores_padding_gain_offset_and_bad_pixels(linear_scan) -> None:
    display = log_display(linear_scan())
    level = median_level(display)
    assert median_level(np.pad(display, 40)) == pytest.approx(level, abs=0.02)  # black margins left out
    assert median_level(display * 200 + 30) == pytest.approx(level, abs=1e-6)
    holed = display.copy()
    holed[:5] = np.nan
    holed[6, 7] = np.inf
    assert np.isfinite(median_level(holed))
    assert np.isnan(median_level(np.full((8, 8), 3.0))) and np.isnan(median_level(np.full((4, 4), np.nan)))
    assert looks_linear(np.zeros((4, 4))) is None  # nothing to measure: no claim


def test_a_volume_is_judged_by_sampled_bscans_read_one_at_a_time(linear_scan) -> None:
    class OnlyIndexed:
        """A volume that can only be read b-scan by b-scan (as a memory-mapped or lazy one)."""

        def __init__(self, stack: np.ndarray) -> None:
            self.stack, self.shape, self.read = stack, stack.shape, []

        def __getitem__(self, i: int) -> np.ndarray:
            self.read.append(i)
            return self.stack[i]

        def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
            raise AssertionError("the whole volume was read")

    linear = np.stack([linear_scan((200, 60), i) for i in range(20)])
    vol = OnlyIndexed(linear)
    assert looks_linear(vol) is not None and len(vol.read) == 8 and vol.read[0] == 0 and vol.read[-1] == 19
    mixed = np.concatenate([log_display(linear[:15]), linear[15:]])  # a display volume, a few odd b-scans
    assert looks_linear(mixed) is None


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs the shared real data (../shared/data)")
def test_every_shared_scan_is_display_domain_and_the_vol_intensities_are_linear() -> None:
    from napari_hdcyclegan.io import read_oct

    paths = [*sorted(SHARED.glob("paired/*/*/*.tif")), *sorted(SHARED.glob("single_noisy/*/*")),
             *sorted(SHARED.glob("vendor/*/*.vol")), *sorted(SHARED.glob("layers/tian2015_octlayers/*.png"))]
    assert len(paths) > 60
    for path in paths:
        data = read_oct(path).data
        assert looks_linear(data) is None, path
    vol = read_oct(SHARED / "vendor" / "heidelberg_vol" / "valid.vol").data  # read as a log display
    level = looks_linear(inverse_log_display(vol))
    assert level is not None and level < LINEAR_LEVEL_BELOW / 5, level  # 0.0016
