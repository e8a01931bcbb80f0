"""training.data.align_reference and its use for the Duke training targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from training import sources
from training.config import FitConfig
from training.data import DataError, align_reference
from training.sources import load_training_data


def _scene(seed: int = 0, shape: tuple[int, int] = (96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, shape[0])[:, None]
    layers = 60 + 120 * np.exp(-((rows - 0.5) / 0.15) ** 2) + 0 * np.arange(shape[1])
    return layers + gaussian_filter(rng.normal(0, 20, shape), 3)


def test_align_reference_recovers_the_noisy_frames_mapping() -> None:
    average = _scene()
    noise = np.random.default_rng(1).normal(0, 25, average.shape)
    noisy = 1.3 * average - 19 + noise
    aligned = align_reference(noisy, average)
    assert aligned.dtype == np.float32 and aligned.shape == average.shape
    slope, offset = np.polyfit(average.ravel(), aligned.ravel(), 1)
    assert slope == pytest.approx(1.3, abs=0.03) and offset == pytest.approx(-19, abs=3)
    np.testing.assert_allclose(aligned, 1.3 * average - 19, atol=3.0)


def test_align_reference_leaves_a_matching_reference_nearly_unchanged() -> None:
    average = _scene(2)
    noisy = average + np.random.default_rng(3).normal(0, 25, average.shape)
    assert np.abs(align_reference(noisy, average) - average).mean() < 2.0


def test_align_reference_rejects_mismatched_shapes_and_flat_images() -> None:
    with pytest.raises(DataError, match="differ in shape"):
        align_reference(np.zeros((10, 12)), np.zeros((10, 11)))
    with pytest.raises(DataError, match="cannot align"):
        align_reference(_scene(), np.full((96, 128), 80.0))


@pytest.mark.parametrize("align", [False, True])
def test_duke_targets_are_aligned_only_when_asked(align: bool, monkeypatch) -> None:
    average = np.clip(_scene(4), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(5)
    noisy = np.clip(1.25 * average.astype(float) - 15 + rng.normal(0, 20, average.shape), 0, 255).astype(np.uint8)
    pairs = {"train": [("S01/test", noisy, average)], "val": [("S05/test", noisy, average)]}
    monkeypatch.setattr(sources, "duke_pairs", lambda split, root=None, extra_frames=False: pairs[split])
    data = load_training_data(FitConfig(data="duke", crop=64, duke_align=align))
    target = data.sampler.targets[0] * 255
    expected = align_reference(noisy, average) if align else average.astype(np.float32)
    np.testing.assert_allclose(target, np.clip(expected, 0, 255), atol=0.01)
    assert data.description["references_aligned"] is align
    # validation always scores against the reference as recorded
    np.testing.assert_allclose(data.val[0].reference * 255, average, atol=0.01)
    # the LN domain (for the discriminator) is the same reference the pairs learn from
    np.testing.assert_allclose(data.sampler.ln[0] * 255, np.clip(expected, 0, 255), atol=0.01)



def test_gain_jitter_scales_input_and_target_by_one_gain_per_crop() -> None:
    from training.data import CropSampler

    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0.1, 0.6, (40, 40)) for _ in range(3)]
    targets = [0.5 * x + 0.1 for x in inputs]  # so that target - input / 2 = 0.1 x gain: the gain is recoverable
    x0, y0 = CropSampler(inputs, inputs, 16, targets).paired_batch(np.random.default_rng(2), 8)
    np.testing.assert_allclose((y0 - 0.5 * x0) / 0.1, 1.0, rtol=1e-5)  # off: gain 1
    x, y = CropSampler(inputs, inputs, 16, targets, gain_jitter=0.5).paired_batch(np.random.default_rng(2), 64)
    gains = (y - 0.5 * x) / 0.1  # (batch, 1, 16, 16); values stay below 1, so nothing is clipped
    per_crop = gains.reshape(64, -1)
    np.testing.assert_allclose(per_crop, per_crop[:, :1].repeat(per_crop.shape[1], 1), rtol=1e-4)  # one gain a crop
    g = per_crop[:, 0]
    assert g.min() >= 1 / 1.5 - 1e-4 and g.max() <= 1.5 + 1e-4
    assert g.min() < 0.8 and g.max() > 1.25  # the range is used, dimmer and brighter
    with pytest.raises(SystemExit, match="gain_jitter must be >= 0"):
        from training.config import parse_args

        parse_args(["--gain-jitter", "-0.1"])


def test_pair_shrink_takes_one_window_of_both_and_shrinks_half_the_crops() -> None:
    from training.config import parse_args
    from training.data import CropSampler

    rows, cols = np.mgrid[0:64, 0:64].astype(np.float64)
    inputs = [(rows + 100 * cols) / 1e4]
    targets = [0.5 * inputs[0] + 0.1]  # a linear map of the input: a shared window keeps it exactly
    x, y = CropSampler(inputs, inputs, 16, targets, pair_shrink=0.5).paired_batch(np.random.default_rng(0), 64)
    assert x.shape == y.shape == (64, 1, 16, 16)
    np.testing.assert_allclose(y, 0.5 * x + 0.1, atol=1e-6)
    # the step down the A-scans grows by 1 / scale for shrunk crops, up to 2x
    step = np.median(np.diff(x[:, 0], axis=1), axis=(1, 2)) * 1e4
    native = np.isclose(step, 1.0, atol=0.01)
    assert 0.3 < native.mean() < 0.7 and step.max() > 1.6 and step.max() < 2.01
    with pytest.raises(SystemExit, match=r"pair_shrink must be 0 \(off\) or in \(0, 1\]"):
        parse_args(["--pair-shrink", "1.5"])


def test_shrink_share_sets_the_share_of_shrunk_crops() -> None:
    from training.config import parse_args
    from training.data import CropSampler, shrink_scale

    rows, cols = np.mgrid[0:64, 0:64].astype(np.float64)
    inputs = [(rows + 100 * cols) / 1e4]
    sampler = CropSampler(inputs, inputs, 16, inputs, pair_shrink=0.5, shrink_share=0.25)
    x, _ = sampler.paired_batch(np.random.default_rng(0), 400)
    step = np.median(np.diff(x[:, 0], axis=1), axis=(1, 2)) * 1e4
    assert 0.68 < np.isclose(step, 1.0, atol=0.01).mean() < 0.82
    # the default share draws what the option drew before it had a share: older runs resume unchanged
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    old = [1.0 if a.random() < 0.5 else float(a.uniform(0.5, 1.0)) for _ in range(50)]
    assert [shrink_scale(b, 0.5) for _ in range(50)] == old
    assert parse_args(["--pair-shrink", "0.5", "--shrink-share", "0.25"])[0].shrink_share == 0.25
    with pytest.raises(SystemExit, match=r"shrink_share must be in \(0, 1\]"):
        parse_args(["--shrink-share", "0"])


def test_colour_tiffs_and_pngs_are_read_as_one_gray_b_scan(tmp_path):
    import imageio.v3 as iio
    import tifffile

    from training.data import read_image_stack

    gray = (np.arange(40 * 60) % 256).astype(np.uint8).reshape(40, 60)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")  # read as 40 b-scans of 60 x 3 before
    iio.imwrite(tmp_path / "rgba.png", np.concatenate([rgb, np.full((40, 60, 1), 255, np.uint8)], axis=-1))
    for name in ("rgb.tif", "rgba.png"):
        bscans = read_image_stack(tmp_path / name)
        assert len(bscans) == 1 and bscans[0].dtype == np.uint8
        np.testing.assert_array_equal(bscans[0], gray)  # gray stored as colour comes back exactly
    deep = np.repeat((gray.astype(np.uint16) * 257)[..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb16.tif", deep, photometric="rgb")
    assert read_image_stack(tmp_path / "rgb16.tif")[0].dtype == np.uint16
