"""Tests of the classical baselines: shape/dtype/range contract, denoising, progress, cancel, extras."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_hdcyclegan import baselines
from napari_hdcyclegan.baselines import BASELINES, MissingExtraError, denoise_bm3d
from napari_hdcyclegan.progress import Cancelled

FAST = [k for k in BASELINES if k != "bm3d"]


def layered(shape=(48, 64), seed=0, noise=0.12):
    """(noisy, clean) float32 synthetic retina in [0, 1]: bright bands, additive display-domain noise."""
    h, w = shape
    rows = np.arange(h)[:, None] + 2 * np.sin(np.arange(w)[None, :] / 7.0)
    clean = np.full(shape, 0.1, np.float32)
    for top, bottom, level in [(0.30, 0.38, 0.8), (0.38, 0.62, 0.45), (0.62, 0.70, 0.95),
                               (0.70, 0.82, 0.55)]:
        clean[(rows >= top * h) & (rows < bottom * h)] = level
    rng = np.random.default_rng(seed)
    noisy = np.clip(clean + rng.normal(0, noise, shape), 0, 1).astype(np.float32)
    return noisy, clean


def as_dtype(unit, dtype):
    """Scale a [0, 1] image into ``dtype``'s usual range (uint8 0..255, uint16 0..4000, float 0..1)."""
    scale = {np.uint8: 255.0, np.uint16: 4000.0, np.float32: 1.0}[dtype]
    return (unit * scale).round().astype(dtype) if dtype != np.float32 else (unit * scale).astype(dtype)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("ndim", [2, 3])
def test_shape_dtype_range(method, dtype, ndim):
    noisy, _ = layered((32, 40))
    img = as_dtype(noisy, dtype)
    if ndim == 3:
        img = np.stack([img, img[::-1]])
    out = BASELINES[method](img)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert out.min() >= img.min() and out.max() <= img.max()
    assert not np.array_equal(out, img)  # it did something


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_bm3d_contract(dtype):
    noisy, clean = layered((32, 32))
    img = np.stack([as_dtype(noisy, dtype)] * 2)
    out = denoise_bm3d(img)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert out.min() >= img.min() and out.max() <= img.max()
    def err(a):
        return np.mean((a.astype(np.float64) - as_dtype(clean, dtype).astype(np.float64)) ** 2)

    assert err(out[0]) < 0.7 * err(img[0])


@pytest.mark.parametrize("method", FAST)
def test_denoising_lowers_error(method):
    noisy, clean = layered((96, 128), seed=1)  # bands thicker than the default median footprint
    out = BASELINES[method](noisy)
    def mse(a):
        return float(np.mean((a - clean) ** 2))

    assert mse(out) < 0.75 * mse(noisy), method


def test_volume_is_slice_by_slice():
    noisy, _ = layered((32, 40), seed=2)
    other, _ = layered((32, 40), seed=3)
    vol = np.stack([noisy, other])
    out = baselines.denoise_nlmeans(vol)
    # Same global intensity mapping (min/max of the volume) applies to each slice.
    lone = baselines.denoise_nlmeans(np.stack([noisy, noisy]))
    assert np.allclose(out[0], lone[0], atol=1e-5)


def test_progress_and_cancel():
    noisy, _ = layered((24, 24))
    vol = np.stack([noisy] * 3)
    calls = []
    BASELINES["median"](vol, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    seen = []

    def cancel():
        seen.append(1)
        return len(seen) > 1  # let the first slice run, stop before the second

    with pytest.raises(Cancelled):
        BASELINES["wavelet"](vol, cancel=cancel)
    assert len(seen) == 2


def test_parameters_override_estimate():
    noisy, _ = layered((32, 32), seed=4)
    weak = baselines.denoise_nlmeans(noisy, h=1e-4, sigma=0.0)
    assert np.allclose(weak, noisy, atol=2e-3)  # tiny h: (almost) no smoothing
    strong = baselines.denoise_wavelet(noisy, sigma=0.2)
    assert strong.std() < baselines.denoise_wavelet(noisy, sigma=0.01).std()
    with pytest.raises(ValueError):
        baselines.denoise_wavelet(noisy, sigma=-1.0)


def test_missing_bm3d_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    noisy, _ = layered((16, 16))
    with pytest.raises(MissingExtraError, match=r'pip install "napari-hdcyclegan\[bm3d\]"'):
        denoise_bm3d(noisy)
    assert issubclass(MissingExtraError, ImportError)


def test_bad_input():
    with pytest.raises(ValueError):
        BASELINES["median"](np.zeros((4, 4, 4, 4)))
    with pytest.raises(ValueError):
        BASELINES["median"](np.array([["a"]]))


def test_constant_image_is_kept():
    img = np.full((16, 16), 7, np.uint8)
    for key in FAST:
        assert np.array_equal(BASELINES[key](img), img), key


def test_comparison_steps_model_and_baselines_per_bscan(monkeypatch):
    """iter_comparison: each b-scan on its own (the current-b-scan result equals that b-scan of the
    volume's), progress over every method, a missing extra reported rather than raised."""
    from napari_hdcyclegan.progress import drive

    class Halving:  # a stand-in model: anything with iter_denoise
        def iter_denoise(self, data):
            for start in range(0, data.shape[0], 2):
                yield start, min(start + 2, data.shape[0]), data[start:start + 2] // 2

    def missing(image):
        raise MissingExtraError("pip install it")

    monkeypatch.setitem(BASELINES, "bm3d", missing)
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 32, 40)) * 200).astype(np.uint8)
    seen: list = []
    out = drive(baselines.iter_comparison(stack, ("bm3d", "median"), Halving()),
                progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 9) and seen[-1] == (9, 9) and all(t == 9 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_array_equal(out["results"]["model"], stack // 2)
    assert set(out["results"]) == {"model", "median"} and "pip install it" in out["missing"]["bm3d"]
    one = drive(baselines.iter_comparison(stack[1:2], ("median",)))["results"]["median"]
    np.testing.assert_array_equal(one[0], out["results"]["median"][1])


@pytest.mark.parametrize("name", ["median", "wavelet"])
def test_non_finite_pixels_come_back_and_huge_floats_keep_their_range(name):
    """As the model's outputs: NaN / inf where they were (they became grey levels), and float64 values
    beyond float32's range mapped in float64 (they came back all 0)."""
    x = (np.random.default_rng(0).random((32, 40)) * 200 + 10).astype(np.float64)
    x[3, 4], x[5, 6] = np.nan, np.inf
    out = BASELINES[name](x)
    assert np.isnan(out[3, 4]) and out[5, 6] == np.inf and np.isfinite(out).sum() == x.size - 2
    huge = BASELINES[name](np.nan_to_num(x, nan=50.0, posinf=50.0) * 1e40)
    assert np.isfinite(huge).all() and 1e40 < huge.mean() < 210e40


def test_a_colour_image_or_a_mask_is_refused_as_the_model_refuses_it():
    from napari_hdcyclegan.errors import InputError

    rgb = np.zeros((40, 50, 3), np.uint8)
    with pytest.raises(InputError, match="looks like colour channels"):
        BASELINES["median"](rgb)  # was denoised as 40 b-scans of 50 x 3 pixels
    with pytest.raises(InputError, match="bool"):
        BASELINES["median"](np.zeros((20, 20), bool))
    assert BASELINES["median"](np.zeros((3, 40, 50), np.uint8)).shape == (3, 40, 50)  # three b-scans stay
