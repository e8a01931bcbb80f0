"""The raw-image side of the intensity pipeline (napari_hdcyclegan.normalise)."""

import numpy as np

from napari_hdcyclegan.normalise import like_input


def test_like_input_rounds_and_clips_integers():
    raw = np.array([[0, 100]], np.int16)
    out = like_input(np.array([[-40000.0, 99.6]]), raw)
    assert out.dtype == np.int16
    assert out.tolist() == [[-32768, 100]]


def test_like_input_keeps_the_largest_uint64_from_wrapping():
    raw = np.array([[0, 2**64 - 1]], np.uint64)
    out = like_input(np.array([[-1.0, 2.0**64]]), raw)
    assert out.dtype == np.uint64
    # float64's largest value below 2**64: 2**64 itself would wrap to 0
    assert out[0, 0] == 0 and int(out[0, 1]) == 2**64 - 2048


def test_like_input_restores_non_finite_pixels_of_a_float_input():
    raw = np.array([[np.nan, 1.0, np.inf, -np.inf]], np.float32)
    out = like_input(np.array([[0.5, 0.9, 0.7, 0.2]]), raw)
    assert out.dtype == np.float32
    assert np.isnan(out[0, 0]) and out[0, 1] == np.float32(0.9)
    assert out[0, 2] == np.inf and out[0, 3] == -np.inf
