"""scripts/sampling_check.py: the other samplings it makes of a scan."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "sampling_check", Path(__file__).resolve().parents[1] / "scripts" / "sampling_check.py")
assert _SPEC is not None and _SPEC.loader is not None
check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check)


def test_fewer_a_scans_are_every_other_one_without_interpolation() -> None:
    image = np.random.default_rng(0).random((4, 9))
    np.testing.assert_array_equal(check.resample_columns(image, 0.5), image[:, 0::2])
    np.testing.assert_array_equal(check.resample_columns(image, 0.5, start=1), image[:, 1::2])
    np.testing.assert_array_equal(check.resample_columns(image, 1 / 3), image[:, 0::3])
    np.testing.assert_array_equal(check.resample_columns(image, 1), image)


def test_more_a_scans_interpolate_linearly_between_the_ends() -> None:
    ramp = np.tile(np.arange(10, dtype=np.float64) * 3.0, (2, 1))
    dense = check.resample_columns(ramp, 2)
    assert dense.shape == (2, 20)
    np.testing.assert_allclose(dense, np.tile(np.linspace(0, 27, 20), (2, 1)))  # a ramp stays a ramp
    noise = np.random.default_rng(1).normal(size=(64, 200))
    dense = check.resample_columns(noise, 2)
    # neighbouring A-scans now share their noise, as in a denser acquisition
    assert np.corrcoef(dense[:, :-1].ravel(), dense[:, 1:].ravel())[0, 1] > 0.5


@pytest.mark.parametrize("factor", [0, -1, 0.4, 0.7])
def test_factors_that_are_not_a_sampling_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        check.resample_columns(np.zeros((2, 8)), factor)
