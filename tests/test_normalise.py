"""The raw-image side of the intensity pipeline (napari_hdcyclegan.normalise)."""

import numpy as np
import pytest

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
    raw = np.array([[np.nan, 1.0, np.inf, -np.inf, 3.0]], np.float32)
    out = like_input(np.array([[0.5, 0.9, 0.7, 0.2, 2.5]]), raw)
    assert out.dtype == np.float32
    assert np.isnan(out[0, 0]) and out[0, 1] == np.float32(0.9) and out[0, 4] == np.float32(2.5)
    assert out[0, 2] == np.inf and out[0, 3] == -np.inf


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_like_input_gives_back_b_scans_of_one_value_as_they_were(dtype: type) -> None:
    raw = np.zeros((3, 4, 5), dtype)
    raw[0] = 77  # constant
    raw[2, 1, 2] = 9  # one pixel differs: denoised as usual
    if raw.dtype.kind == "f":
        raw[1, 0, 0] = np.nan  # blank apart from NaN
    out = like_input(np.full((3, 4, 5), 40.0), raw)
    np.testing.assert_array_equal(out[:2], raw[:2])
    assert out.dtype == raw.dtype and (out[2] == 40).all()



def test_empty_bscans_finds_only_those_without_a_finite_pixel():
    from napari_hdcyclegan.normalise import empty_bscans

    stack = np.ones((4, 5, 6), np.float32)
    stack[1], stack[3] = np.nan, np.inf
    stack[2, 0, 0] = np.nan  # one finite pixel is enough
    assert empty_bscans(stack) == [1, 3]
    assert empty_bscans(stack[1]) == [0] and empty_bscans(stack[0]) == []
    assert empty_bscans(np.zeros((3, 5, 6), np.uint8)) == []


def test_empty_bscans_can_refuse_a_flattening_outlier_naming_its_bscan():
    from napari_hdcyclegan.errors import InputError
    from napari_hdcyclegan.normalise import empty_bscans

    stack = np.random.default_rng(0).uniform(0, 200, (5, 16, 16)).astype(np.float32)
    stack[2] = np.nan
    stack[4, 3, 3] = 3e38
    assert empty_bscans(stack) == [2]  # the note alone does not judge the values
    with pytest.raises(InputError, match=r"^b-scan 4: values span"):
        empty_bscans(stack, refuse_outliers=True)
    with pytest.raises(InputError, match=r"^a b-scan's values span"):
        empty_bscans(stack[4], refuse_outliers=True)
    assert empty_bscans(stack[:4], refuse_outliers=True) == [2]


def test_a_few_integer_markers_that_would_set_the_bit_depth_are_refused():
    """uint16 12-bit data with ten pixels at 65535 came out 0..32768; int16 with -32768 went below its range."""
    from napari_hdcyclegan.errors import InputError
    from napari_hdcyclegan.normalise import empty_bscans, volume_range

    rng = np.random.default_rng(0)
    twelve = rng.integers(450, 3826, (3, 64, 96)).astype(np.uint16)
    norm = {"method": "dtype"}
    assert volume_range(twelve, twelve.shape, twelve.dtype, norm) == (0.0, 4095.0)
    marked = twelve.copy()
    marked[1, 0, :10] = 65535
    with pytest.raises(InputError, match=r"^values span 450 to 65535 but nearly all lie in \[450, 3825\].*clip them"):
        volume_range(marked, marked.shape, marked.dtype, norm)
    with pytest.raises(InputError, match="no-data markers"):
        empty_bscans(marked, refuse_outliers=True)  # before auto chooses a model
    assert empty_bscans(marked) == []
    signed = rng.integers(120, 1021, (64, 96)).astype(np.int16)
    signed[0, :10] = -32768
    with pytest.raises(InputError, match="^values span -32768 to 1020"):
        volume_range(signed, signed.shape, signed.dtype, norm)
    full = rng.integers(0, 60001, (64, 96)).astype(np.uint16)
    full[0, 0] = 65535  # a saturated pixel at the top of data that use the whole range: kept
    assert volume_range(full, full.shape, full.dtype, norm) == (0.0, 65535.0)
    zeros = rng.integers(3700, 4095, (64, 96)).astype(np.uint16)
    zeros[:2] = 0  # zeros below 12-bit data leave its bit depth as it is: the same mapping, not refused
    assert volume_range(zeros, zeros.shape, zeros.dtype, norm) == (0.0, 4095.0)
    sparse = np.zeros((2, 64, 96), np.uint16)
    sparse[0, 5, :3] = 60000  # a blank volume with a few bright pixels: no bulk to flatten
    assert volume_range(sparse, sparse.shape, sparse.dtype, norm) == (0.0, 65535.0)


def test_markers_are_judged_on_the_values_not_on_nan_masks():
    """A b-scan masked with NaN around a region was judged with its NaNs counted in the bulk."""
    import torch

    from napari_hdcyclegan.normalise import marker_rows

    rng = np.random.default_rng(0)
    region = rng.uniform(990, 1000, (60, 300))
    region[:5] = rng.uniform(0, 1, (5, 300))  # 8 % of the values far below the rest: data, not markers
    masked = np.full((200, 400), np.nan)
    masked[50:110, 50:350] = region
    rows = torch.from_numpy(np.stack([masked.ravel(), np.resize(region.ravel(), masked.size)]))
    lo, hi = torch.tensor([region.min()] * 2), torch.tensor([region.max()] * 2)
    assert not marker_rows(rows, lo, hi)[0].any()
    region = rng.uniform(990, 1000, (60, 300))
    region[0, :100] = -9999  # 0.6 % of the values: markers, masked or not
    masked[50:110, 50:350] = region
    for row in (masked.ravel(), region.ravel()):
        t = torch.from_numpy(row)[None]
        assert marker_rows(t, torch.tensor([-9999.0]), torch.tensor([float(region.max())]))[0].all()

