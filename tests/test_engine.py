"""Inference engine: intensity round trip, dtypes, NaN, streaming, progress/cancel, features, cache."""

import copy
import warnings

import numpy as np
import pytest
import tifffile
import torch

from napari_hdcyclegan import denoiser as denoiser_module
from napari_hdcyclegan import engine
from napari_hdcyclegan.engine import Cancelled, Denoiser, get_denoiser
from napari_hdcyclegan.errors import InputError
from napari_hdcyclegan.intensity import from_unit, to_unit, unit_range
from napari_hdcyclegan.model.checkpoint import CheckpointError, ModelConfig, save_model
from napari_hdcyclegan.model.networks import GENERATOR_STAGES, Generator


def tiny(normalisation=None, **kwargs) -> Denoiser:
    torch.manual_seed(0)
    config = ModelConfig(generator_width=4, name="tiny", trained=True)
    if normalisation is not None:
        config.normalisation = normalisation
    return Denoiser(Generator(4), config, "cpu", **kwargs)


def identity(denoiser: Denoiser) -> Denoiser:
    """Replace the network by the identity, so that only the intensity pipeline remains."""
    denoiser.run_units = lambda unit: unit.float().clamp(0, 1)
    return denoiser


def reference(data: np.ndarray, normalisation: dict) -> np.ndarray:
    """What an identity model must return: per b-scan clip to unit_range, mapped back."""
    vol = data[None] if data.ndim == 2 else data
    out = np.stack([from_unit(to_unit(b, *unit_range(b, normalisation)), *unit_range(b, normalisation), b.dtype)
                    for b in vol])
    return out[0] if data.ndim == 2 else out


def volume(dtype, shape=(3, 24, 40), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        return (x * min(info.max, 60000)).astype(dtype)
    return (x * 250 - 20).astype(dtype)


@pytest.fixture(autouse=True)
def _no_resident_model():
    yield
    engine.release()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("method", ["percentile", "dtype"])
def test_identity_round_trip_matches_intensity_module(dtype, method):
    norm = {"method": method, "low": 0.5, "high": 99.5}
    data = volume(dtype)
    out = identity(tiny(norm)).denoise(data)
    assert out.dtype == data.dtype and out.shape == data.shape
    expected = reference(data, norm)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    else:  # integers: at most one level off (float32 vs float64 rounding at .5)
        assert np.abs(out.astype(np.int64) - expected.astype(np.int64)).max() <= 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_real_model_keeps_dtype_and_range(dtype):
    data = volume(dtype, (2, 40, 48))
    out = tiny().denoise(data)
    assert out.dtype == data.dtype and out.shape == data.shape
    for b_in, b_out in zip(data, out):
        lo, hi = unit_range(b_in, {"method": "percentile"})
        assert b_out.min() >= np.floor(lo) - 1e-3 and b_out.max() <= np.ceil(hi) + 1e-3
    assert not np.array_equal(out, data)


def test_2d_and_3d_agree():
    data = volume(np.float32, (2, 32, 40))
    den = tiny()
    vol = den.denoise(data)
    # batched vs single convolutions differ in float rounding only
    np.testing.assert_allclose(den.denoise(data[1]), vol[1], rtol=0, atol=1e-5 * np.ptp(data))


def test_nan_stays_nan_and_rest_is_finite():
    data = volume(np.float32, (2, 32, 40))
    data[0, 5, 7] = np.nan
    data[1, :, :3] = np.nan
    data[1, 0, 10] = np.inf
    out = tiny().denoise(data)
    assert np.array_equal(np.isnan(out), np.isnan(data))
    assert out[1, 0, 10] == np.inf
    assert np.isfinite(out[~np.isnan(data) & np.isfinite(data)]).all()


def test_all_nan_bscan():
    data = np.full((20, 24), np.nan, np.float32)
    assert np.isnan(tiny().denoise(data)).all()


@pytest.mark.parametrize("dtype,value", [(np.uint8, 77), (np.uint16, 0), (np.float32, 3.25)])
def test_constant_image_comes_back_constant(dtype, value):
    data = np.full((2, 20, 24), value, dtype)
    out = tiny().denoise(data)
    assert out.dtype == data.dtype and np.array_equal(out, data)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_a_b_scan_of_one_value_is_not_painted_under_the_dtype_mapping(dtype):
    # the shipped models' mapping sends a constant 77 to 77/255, not to 0: the generator would invent
    # structure in a blank b-scan of a volume (top and bottom rows ~50 and ~120 with spectralis-real)
    data = np.full((3, 32, 40), 77, dtype)
    data[1] = volume(dtype, (1, 32, 40))[0] % 200
    out = tiny({"method": "dtype"}).denoise(data)
    np.testing.assert_array_equal(out[[0, 2]], data[[0, 2]])
    assert not np.array_equal(out[1], data[1])


def test_bad_input_is_a_clear_error():
    den = tiny()
    with pytest.raises(ValueError, match="dimensions|2D b-scan"):
        den.denoise(np.zeros((2, 3, 20, 20)))
    with pytest.raises(ValueError, match="numeric"):
        den.denoise(np.array([["a"]]))
    with pytest.raises(ValueError, match="binary .bool. image is a mask"):
        den.denoise(np.zeros((20, 20), bool))
    with pytest.raises(ValueError, match="at least"):
        den.denoise(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"at least 9x9 pixels, got shape \(4, 4\)$"):
        den.denoise(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\(128 b-scans of 96x3; a last axis of 3 looks like colour channels"):
        den.denoise(np.zeros((128, 96, 3), np.uint8))  # an RGB image saved as a gray stack


def test_big_endian_input():
    data = volume(np.uint16, (2, 24, 32))
    out = tiny().denoise(data.astype(">u2"))
    np.testing.assert_array_equal(out.astype(np.uint16), tiny().denoise(data))


class LazyStack:
    """Array-like that records which slices are read and refuses to be read whole."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        assert isinstance(key, slice), key
        self.reads.append((key.start, key.stop))
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was read")


def test_streams_batches_from_a_lazy_volume():
    data = volume(np.uint16, (7, 24, 32))
    lazy = LazyStack(data)
    den = tiny(batch_size=3)
    out = den.denoise(lazy)
    assert lazy.reads == [(0, 3), (3, 6), (6, 7)]
    whole = tiny(batch_size=7).denoise(data)  # batch size changes float rounding only
    assert np.abs(out.astype(np.int64) - whole.astype(np.int64)).max() <= 1


def test_memmap_in_and_out(tmp_path):
    data = volume(np.uint16, (5, 24, 32))
    tifffile.imwrite(tmp_path / "in.tif", data)
    src = tifffile.memmap(tmp_path / "in.tif", mode="r")
    dst = tifffile.memmap(tmp_path / "out.tif", shape=data.shape, dtype=data.dtype)
    den = tiny(batch_size=2)
    result = den.denoise(src, out=dst)
    assert result is dst
    dst.flush()
    del dst
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), den.denoise(data))


def test_out_must_match():
    with pytest.raises(ValueError, match="out has shape"):
        tiny().denoise(np.zeros((2, 16, 16), np.float32), out=np.zeros((2, 16, 16), np.float64))


def test_progress_reports_every_batch():
    calls = []
    tiny(batch_size=2).denoise(volume(np.uint8, (5, 16, 16)), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]


def test_cancel_between_batches_raises():
    den = tiny(batch_size=2)
    done = []
    with pytest.raises(Cancelled):
        den.denoise(volume(np.uint8, (6, 16, 16)), progress=lambda d, t: done.append(d),
                    cancel=lambda: len(done) >= 2)
    assert done == [0, 2]
    assert issubclass(Cancelled, Exception)


def test_iter_denoise_chunks_cover_the_volume():
    data = volume(np.float32, (5, 16, 24))
    den = tiny(batch_size=2)
    chunks = list(den.iter_denoise(data))
    assert [(a, b) for a, b, _ in chunks] == [(0, 2), (2, 4), (4, 5)]
    assert all(c.shape == (b - a, 16, 24) for a, b, c in chunks)
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in chunks]), den.denoise(data))
    (start, stop, chunk), = den.iter_denoise(data[0])
    assert (start, stop, chunk.shape) == (0, 1, (1, 16, 24))


def test_out_of_memory_halves_the_batch_and_goes_on():
    den = tiny(batch_size=4)
    real_run = den.run_units

    def run(unit):
        if unit.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_run(unit)

    den.run_units = run
    data = volume(np.uint8, (5, 16, 16))
    with pytest.warns(RuntimeWarning, match="batch size halved to 1"):
        out = den.denoise(data)
    assert den.batch_size == 1
    den.run_units = real_run
    np.testing.assert_array_equal(out, den.denoise(data))


def test_feature_maps_every_stage():
    den = tiny()
    bscan = volume(np.float32, (37, 53))
    channels = den.stage_channels()
    assert tuple(channels) == GENERATOR_STAGES
    assert channels == {"init": 4, "down1": 8, "down2": 16, "down3": 32, **{f"res{i}": 32 for i in range(1, 7)},
                        "up1": 16, "up2": 8, "up3": 4, "final": 1}
    for stage, n in channels.items():
        fm = den.feature_maps(bscan, stage)
        assert fm.shape == (n, 37, 53) and fm.dtype == np.float32, stage
        assert np.isfinite(fm).all()
    one = den.feature_maps(bscan, "down2", 3)
    np.testing.assert_allclose(one[0], den.feature_maps(bscan, "down2")[3], rtol=1e-6)
    assert den.feature_maps(bscan, "up1", [0, 2]).shape == (2, 37, 53)


def test_feature_map_final_is_the_unclipped_output():
    den = tiny()
    bscan = volume(np.float32, (32, 40))
    fm = den.feature_maps(bscan, "final")[0]
    unit = to_unit(bscan, *unit_range(bscan, den.config.normalisation))
    with torch.no_grad():
        ref = den.generator(torch.from_numpy(unit)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(fm, ref, rtol=1e-4, atol=1e-4)


def test_feature_maps_bad_arguments():
    den = tiny()
    bscan = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="unknown stage"):
        den.feature_maps(bscan, "res7")
    with pytest.raises(ValueError, match="channels"):
        den.feature_maps(bscan, "init", 4)
    with pytest.raises(ValueError, match="2D"):
        den.feature_maps(np.zeros((2, 16, 16)), "init")


def test_bf16_agrees_with_fp32_on_a_tiny_model():
    data = volume(np.float32, (2, 32, 32))
    den = tiny()
    den.precision = "fp32"
    ref = den.denoise(data)
    den.precision = "bf16"
    assert den.autocast_dtype == torch.bfloat16
    low = den.denoise(data)
    err = np.abs(low - ref) / np.ptp(data)
    # bf16 keeps 8 mantissa bits; through 27 random-weight convs: ~0.7% mean, ~5% max of the range
    assert err.mean() < 0.015 and err.max() < 0.10
    assert not np.array_equal(low, ref)  # bf16 really ran


def test_precision_and_device_validation():
    with pytest.raises(ValueError, match="precision"):
        tiny(precision="fp64")
    assert engine.resolve_precision("fp32", torch.device("cpu")) is None
    # auto is float32 on every CPU, native bf16 or not (bf16 is often slower there: README)
    assert engine.resolve_precision("auto", torch.device("cpu")) is None
    assert engine.resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    devices = engine.available_devices()
    assert devices[:2] == ["auto", "cpu"]
    assert engine.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            engine.resolve_device("cuda")
    with pytest.raises(ValueError):
        engine.resolve_device("tpu:3")


def test_untrained_fallback_warns_and_is_labelled(monkeypatch):
    monkeypatch.setattr(engine, "shipped_models", lambda: [])
    with pytest.warns(UserWarning, match="untrained"):
        den = get_denoiser(engine.DEFAULT_MODEL, "cpu")
    assert den.trained is False and den.name == engine.UNTRAINED_NAME
    assert den.provenance()["trained"] is False
    with pytest.warns(UserWarning, match="untrained"):
        # default weights; device named, since "auto" is a GPU where one exists
        assert get_denoiser(device="cpu") is den  # cached, and warns every time


def test_get_denoiser_caches_and_switches(tmp_path):
    config = ModelConfig(generator_width=4, name="tiny-a", trained=True)
    save_model(tmp_path / "a", {"G_L": Generator(4)}, config)
    config.name = "tiny-b"
    save_model(tmp_path / "b", {"G_L": Generator(4)}, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trained models load without a warning
        a = get_denoiser(tmp_path / "a", "cpu")
        assert get_denoiser(str(tmp_path / "a"), "cpu") is a
        b = get_denoiser(tmp_path / "b", "cpu")
    assert b is not a and b.name == "tiny-b" and b.trained
    assert engine.RESIDENT.models() == [a, b]  # both stay loaded: callers no longer evict each other
    assert get_denoiser(tmp_path / "a", "cpu") is a
    prov = b.provenance()
    import hashlib
    assert prov["weights_sha256"] == hashlib.sha256((tmp_path / "b" / "model.safetensors").read_bytes()).hexdigest()
    assert prov["config"]["name"] == "tiny-b" and prov["device"] == "cpu"


def test_get_denoiser_bad_path_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such model"):
        get_denoiser(tmp_path / "missing", "cpu")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json"):
        get_denoiser(tmp_path / "broken", "cpu")


def test_weights_that_differ_from_their_recorded_digest_are_refused(tmp_path):
    import hashlib

    config, nets = ModelConfig(generator_width=4, name="tiny-exported", trained=True), {"G_L": Generator(4)}
    save_model(tmp_path / "m", nets, config)
    weights = tmp_path / "m" / "model.safetensors"
    config.provenance["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()  # as training.export
    save_model(tmp_path / "m", nets, config)
    good = bytes(weights.read_bytes())
    assert get_denoiser(tmp_path / "m", "cpu").trained
    damaged = bytearray(good)
    damaged[-3] ^= 0xFF  # one weight's bits: the file still parses, the network silently changes
    weights.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="differs from the one config.json records"):
        get_denoiser(tmp_path / "m", "cpu")


def test_lateral_sigma_smooths_the_output_across_ascans_only():
    from scipy.ndimage import gaussian_filter1d

    config = ModelConfig(generator_width=4, name="smoothing", trained=True, normalisation={"method": "dtype"},
                         lateral_sigma=1.5)
    den = Denoiser(torch.nn.Identity(), config, "cpu", precision="fp32")  # type: ignore[arg-type]
    data = np.random.default_rng(3).random((2, 24, 40)).astype(np.float32)
    want = np.clip(gaussian_filter1d(data, 1.5, axis=-1, mode="nearest", truncate=3.0), 0, 1)
    np.testing.assert_allclose(den.denoise(data), want, atol=1e-5)
    config.lateral_sigma = 0.0
    np.testing.assert_allclose(den.denoise(data), data, atol=1e-6)


def test_lateral_smoothing_runs_in_float32_under_reduced_precision():
    from scipy.ndimage import gaussian_filter1d

    config = ModelConfig(generator_width=4, name="smoothing", trained=True, normalisation={"method": "dtype"},
                         lateral_sigma=2.0)
    den = Denoiser(torch.nn.Identity(), config, "cpu", precision="bf16")  # type: ignore[arg-type]
    data = np.random.default_rng(5).random((1, 16, 48)).astype(np.float32)
    with torch.inference_mode():  # as the denoising pipeline calls it
        out = den.run_units(torch.from_numpy(data))
    assert out.dtype == torch.float32
    want = np.clip(gaussian_filter1d(data, 2.0, axis=-1, mode="nearest", truncate=3.0), 0, 1)
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)  # bf16 would be off by ~4e-3


def test_with_lateral_sigma_is_a_view_that_leaves_the_shared_model_alone():
    from scipy.ndimage import gaussian_filter1d

    config = ModelConfig(generator_width=4, name="smoothing", trained=True, normalisation={"method": "dtype"},
                         lateral_sigma=1.5)
    den = Denoiser(torch.nn.Identity(), config, "cpu", precision="fp32")  # type: ignore[arg-type]
    data = np.random.default_rng(4).random((1, 16, 40)).astype(np.float32)
    assert den.with_lateral_sigma(None) is den and den.with_lateral_sigma(1.5) is den
    sharp = den.with_lateral_sigma(0)
    assert sharp is not den and sharp.generator is den.generator
    assert sharp.config.lateral_sigma == 0 and den.config.lateral_sigma == 1.5
    assert sharp.provenance()["config"]["lateral_sigma"] == 0
    np.testing.assert_allclose(sharp.denoise(data), data, atol=1e-6)
    wide = den.with_lateral_sigma(3.0).denoise(data)
    np.testing.assert_allclose(wide, gaussian_filter1d(data, 3.0, axis=-1, mode="nearest", truncate=3.0), atol=1e-5)
    for bad in (-1.0, 17.0, float("nan")):
        with pytest.raises(InputError, match="lateral smoothing must be from 0 to 16 pixels"):
            den.with_lateral_sigma(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    data = volume(np.uint16, (4, 64, 64))
    cpu = tiny()
    cpu.config.lateral_sigma = 1.0  # the post-filter runs on the GPU too
    cpu.precision = "fp32"
    gpu = Denoiser(copy.deepcopy(cpu.generator), cpu.config, "cuda", precision="fp32")  # .to() moves in place
    ref = cpu.denoise(data)
    out = gpu.denoise(data)
    assert np.abs(out.astype(np.int64) - ref.astype(np.int64)).max() <= 65535 * 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_precision_stays_close_to_fp32_with_a_shipped_model():
    # a random tiny network amplifies bf16 rounding (instance norm of random features); the check
    # that matters is the shipped model on a b-scan
    from napari_hdcyclegan.simulate import simulate_bscan

    image = simulate_bscan(seed=0, shape=(128, 192)).hn
    weights = "spectralis-real"
    ref = engine.get_denoiser(weights, "cpu")
    ref.precision = "fp32"
    want = ref.denoise(image)
    engine.release()
    gpu = engine.get_denoiser(weights, "cuda")
    assert gpu.precision == "auto" and gpu.autocast_dtype is not None
    assert np.abs(gpu.denoise(image) - want).max() <= 0.03


# ---------------------------------------------------------------- issue 10: dtype normalisation, memory


def _seen_units(den: Denoiser) -> list:
    """Identity network that records the [0, 1] batches the model is given."""
    seen = []

    def run(unit):
        seen.append(unit.clone())
        return unit.float().clamp(0, 1)

    den.run_units = run
    return seen


def test_dtype_normalisation_keeps_uint8_as_value_over_255():
    den = tiny({"method": "dtype"})
    seen = _seen_units(den)
    data = np.array([[[0, 10], [128, 200]]], np.uint8).repeat(12, 1).repeat(6, 2)  # max 200, not 255
    out = den.denoise(data)
    np.testing.assert_allclose(seen[0][0].numpy(), data[0] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("dtype,lo,hi,scale", [
    (np.uint16, 0, 4095, 4095.0),  # 12-bit data in uint16
    (np.int32, 0, 255, 255.0),  # 8-bit values in int32: exactly like uint8
    (np.int16, -300, 700, 1000.0),  # negative values: the volume's own -300..700
    (np.int8, -128, 127, 255.0),
    (np.uint32, 0, 70000, 131071.0),
])
def test_integer_volumes_map_by_their_bit_depth_and_keep_sign(dtype, lo, hi, scale):
    den = tiny({"method": "dtype"}, batch_size=2)
    seen = _seen_units(den)
    rng = np.random.default_rng(1)
    data = rng.integers(lo, hi + 1, (5, 12, 16)).astype(dtype)
    data[0, 0, 0], data[-1, 0, 0] = lo, hi
    out = den.denoise(data)
    offset = min(lo, 0)
    units = torch.cat(seen).numpy()
    np.testing.assert_allclose(units, (data.astype(np.float64) - offset) / scale, atol=1e-6)  # one mapping
    assert out.dtype == data.dtype
    np.testing.assert_array_equal(out, data)  # identity model: negatives kept, nothing clipped


def test_real_model_on_12_bit_data_stays_in_range():
    den = tiny({"method": "dtype"})
    data = (np.random.default_rng(0).random((2, 24, 32)) * 4095).astype(np.uint16)
    out = den.denoise(data)
    assert out.max() <= 4095


def test_non_finite_model_output_is_an_error():
    from napari_hdcyclegan.errors import HDCycleGANError

    den = tiny()
    with torch.no_grad():
        next(den.generator.parameters()).fill_(float("nan"))
    with pytest.raises(HDCycleGANError, match="NaN"):
        den.denoise(volume(np.uint8, (1, 16, 16)))


def test_cpu_batch_capped_to_available_memory(monkeypatch):
    den = tiny(batch_size=64)
    per_bscan = engine.CPU_BYTES_PER_PIXEL * 16 * 16 * den.config.generator_width
    monkeypatch.setattr(denoiser_module, "available_memory", lambda: int(3.5 * per_bscan / engine.CPU_MEMORY_SHARE))
    with pytest.warns(RuntimeWarning, match="using 3"):
        chunks = [(a, b) for a, b, _ in den.iter_denoise(volume(np.uint8, (5, 16, 16)))]
    assert chunks == [(0, 3), (3, 5)] and den.batch_size == 64  # the cap holds for this input only
    monkeypatch.setattr(denoiser_module, "available_memory", lambda: per_bscan // 2)
    with pytest.raises(MemoryError, match="only 0 MB are available"):
        den.denoise(volume(np.uint8, (5, 16, 16)))


def test_cpu_allocation_failure_halves_then_is_a_memory_error():
    den = tiny(batch_size=2)

    def run(unit):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    den.run_units = run
    with pytest.warns(RuntimeWarning, match="halved to 1"), pytest.raises(MemoryError, match="one 16x16 b-scan"):
        den.denoise(volume(np.uint8, (3, 16, 16)))


def test_other_runtime_errors_are_not_taken_for_memory():
    den = tiny()
    den.run_units = lambda unit: (_ for _ in ()).throw(RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        den.denoise(volume(np.uint8, (3, 16, 16)))


def test_drop_pages_keeps_a_memmapped_volume_readable(tmp_path):
    data = volume(np.uint16, (6, 64, 64))
    tifffile.imwrite(tmp_path / "v.tif", data, photometric="minisblack")
    mm = tifffile.memmap(tmp_path / "v.tif", mode="r")
    out = tiny(batch_size=2).denoise(mm)
    engine.drop_pages(mm, 0, 6)
    np.testing.assert_array_equal(mm, data)  # pages come back from the file
    np.testing.assert_array_equal(out, tiny(batch_size=2).denoise(data))


def test_64_bit_integers_reach_torch_and_keep_their_top():
    """TIFF uint64 pages are numpy ulonglong, which torch.from_numpy refuses; 2**63 - 1 rounds up to
    2**63 in float64, which wrapped to -2**63 in int64."""
    den = identity(tiny({"method": "dtype"}))
    for dtype in (np.ulonglong, np.longlong):
        top = np.iinfo(dtype).max
        data = (np.arange(20 * 24, dtype=dtype) * (top // (20 * 24))).reshape(20, 24)
        data[-1, -1] = top
        out = den.denoise(data)
        assert out.dtype == data.dtype and out.min() >= 0
        assert out[-1, -1] > top // 2  # not wrapped round to the bottom


def test_float_values_whose_span_overflows_stay_finite():
    den = identity(tiny({"method": "dtype"}))
    data = volume(np.float32, (1, 20, 24)) * np.float32(1e36)
    data[0, 0, 0], data[0, 0, 1] = -3e38, 3e38  # hi - lo overflows float32: every pixel came back NaN
    out = den.denoise(data)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, data, rtol=0, atol=1e-6 * 6e38)  # float32 [0, 1] steps of the span
    wide = volume(np.float64, (1, 20, 24)) * 5e305
    wide[0, 0, 0] = -1.7e308  # a span beyond float64: refused, not NaN
    with pytest.raises(InputError, match="span more than float64"):
        den.denoise(wide)


def test_a_few_extreme_float_values_are_refused_not_flattened():
    """Mapped by its min..max under "dtype", a b-scan with one 1e30 pixel (or a float32-max no-data
    marker) reached the model as one grey level and came back flat."""
    data = volume(np.float64, (2, 20, 24))
    data[1, 3, 4] = 1e30
    with pytest.raises(InputError, match="^b-scan 1: values span .*extreme values.*set them to NaN"):
        tiny({"method": "dtype"}, batch_size=1).denoise(data)  # named in the volume, not in its batch
    data[1, 3, 4] = np.nan  # what the message asks for: denoised, NaN kept
    assert np.isnan(tiny({"method": "dtype"}).denoise(data)[1, 3, 4])
    assert np.isfinite(tiny().denoise(np.where(np.isnan(data), 1e30, data))).all()  # percentiles: robust
    scaled = volume(np.float64, (1, 20, 24)) * 1e30  # large but not outlying: denoised
    assert np.isfinite(tiny({"method": "dtype"}).denoise(scaled)).all()
    sparse = np.zeros((20, 24))
    sparse[5, :2] = 1e30  # a flat b-scan with a few bright pixels has no bulk to flatten
    assert np.isfinite(tiny({"method": "dtype"}).denoise(sparse)).all()


def test_a_few_no_data_markers_below_float_data_are_refused():
    """Ten pixels at -9999 in a float b-scan of 0.1..1 came back -5667..1, every row changed, silently."""
    data = (volume(np.float32, (2, 20, 24)) + 20) / 270
    data[1, 0, :10] = -9999
    with pytest.raises(InputError, match=r"^b-scan 1: values span -1e\+04 to .*extreme values.*set them to NaN"):
        tiny({"method": "dtype"}, batch_size=1).denoise(data)
    data[1, 0, :10] = np.nan  # what the message asks for
    out = tiny({"method": "dtype"}).denoise(data)
    assert np.isnan(out[1, 0, :10]).all() and np.nanmin(out) >= 0 and np.nanmax(out) <= 1
    reflex = volume(np.float32, (1, 20, 24)) + 30
    reflex[0, 5, :12] = np.linspace(300, 3000, 12)  # a graded bright reflex is data, not a marker
    assert np.isfinite(tiny({"method": "dtype"}).denoise(reflex)).all()


def test_dim_bscans_are_lifted_to_the_models_level_and_others_left_alone():
    from napari_hdcyclegan.normalise import MAX_DIM_GAIN, dim_gain

    norm = {"method": "dtype", "dim_median": 0.4}
    unit = torch.stack([torch.full((12, 12), v) for v in (0.4, 0.38, 0.2, 0.1)])
    gain = dim_gain(unit, norm)
    assert gain is not None and gain.shape == (4, 1, 1)
    # at the level, and within the tolerance below it: untouched; dimmer: lifted, at most MAX_DIM_GAIN
    np.testing.assert_allclose(gain.flatten().numpy(), [1.0, 1.0, 2.0, MAX_DIM_GAIN], rtol=1e-6)
    assert dim_gain(unit[:2], norm) is None and dim_gain(unit, {"method": "dtype"}) is None

    rng = np.random.default_rng(0)
    bright = np.clip(rng.normal(110, 30, (2, 24, 40)), 0, 255).astype(np.uint8)  # median ~110/255 = 0.43
    dim = (bright * 0.5).astype(np.uint8)
    plain, lifted = tiny({"method": "dtype"}), tiny(norm)
    np.testing.assert_array_equal(lifted.denoise(bright), plain.denoise(bright))  # not dim: bit-identical
    seen = []
    run = lifted.run_units
    lifted.run_units = lambda u: seen.append(float(u.median())) or run(u)
    out = lifted.denoise(dim)
    assert out.dtype == np.uint8 and seen[0] == pytest.approx(0.4, abs=0.01)  # the generator saw the level
    assert not np.array_equal(out, plain.denoise(dim))
    # the feature maps show what the generator sees when it denoises: the lifted b-scan
    lifted_maps = lifted.feature_maps(dim[0], "down1")
    np.testing.assert_allclose(lifted_maps, plain.feature_maps(lifted.model_input(dim[:1])[0], "down1"), atol=1e-6)
    assert not np.allclose(lifted_maps, plain.feature_maps(dim[0], "down1"), atol=1e-3)


def test_a_raised_background_passes_through_a_model_with_a_floor_percentile():
    rng = np.random.default_rng(3)
    scan = rng.integers(0, 150, (2, 24, 40)).astype(np.uint8)
    scan[:, :3] = 0  # a black background: what such a model was trained on
    raised = scan + np.uint8(40)  # the same scan exported with its floor at 40 grey levels
    floor, plain = tiny({"method": "dtype", "floor_percentile": 0.5}), tiny({"method": "dtype"})
    base = floor.denoise(scan)
    np.testing.assert_array_equal(base, plain.denoise(scan))  # floor at 0: bit-identical
    out = floor.denoise(raised)
    expected = np.minimum(base.astype(int) + 40, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1 and (out.astype(int) == expected).mean() > 0.99
    assert np.abs(plain.denoise(raised).astype(int) - expected).mean() > 1  # the plain model changes with the floor
    assert floor.provenance(None, raised)["floor_offsets"] == [round(40 / 255, 6)] * 2
    assert floor.provenance(None, scan)["floor_offsets"] == [0.0, 0.0] and "floor_offsets" not in plain.provenance(
        None, scan)
    # the feature maps show what the generator sees: the background taken down, nothing below 0
    np.testing.assert_allclose(floor.feature_maps(raised[0], "down1"), plain.feature_maps(scan[0], "down1"),
                               atol=1e-5)
    assert floor.model_input(raised[:1]).min() >= 0.0
    # one batch of a black and a grey b-scan: each its own offset, as when denoised one at a time
    mixed = np.stack([scan[0], raised[1]])
    floor.batch_size = 2
    np.testing.assert_array_equal(floor.denoise(mixed), np.stack([floor.denoise(b) for b in mixed]))
    assert floor.provenance(None, mixed)["floor_offsets"] == [0.0, round(40 / 255, 6)]


@pytest.mark.parametrize("bad", [-1, 50, "0.1", True])
def test_config_floor_percentile_is_checked(bad):
    from napari_hdcyclegan.model.checkpoint import CheckpointError, ModelConfig

    base = {"format": "hdcyclegan-model", "format_version": 1}
    assert ModelConfig.from_json({**base, "normalisation": {"method": "dtype", "floor_percentile": 0.1}})
    with pytest.raises(CheckpointError, match="floor_percentile"):
        ModelConfig.from_json({**base, "normalisation": {"method": "dtype", "floor_percentile": bad}})


def test_config_dim_median_is_checked(tmp_path):
    from napari_hdcyclegan.model.checkpoint import CheckpointError, ModelConfig

    base = {"format": "hdcyclegan-model", "format_version": 1}
    assert ModelConfig.from_json({**base, "normalisation": {"method": "dtype", "dim_median": 0.34}})
    for bad in (0, 1.5, "0.3", True):
        with pytest.raises(CheckpointError, match="dim_median"):
            ModelConfig.from_json({**base, "normalisation": {"method": "dtype", "dim_median": bad}})


def test_levels_of_the_whole_map_a_part_alike_and_wrong_levels_are_refused():
    den = tiny({"method": "dtype"})
    vol = (volume(np.uint16, (3, 16, 20)) // 16).astype(np.uint16)  # 12-bit values
    vol[0] //= 8  # a dim b-scan: 9 bits alone
    levels = den.volume_levels(vol)
    assert levels == (0.0, 4095.0)
    whole = den.denoise(vol)
    np.testing.assert_array_equal(den.denoise(vol[0], levels=levels), whole[0])
    assert not np.array_equal(den.denoise(vol[0]), whole[0])  # its own 9 bits
    for bad, said in (((0, 0), "low < high"), ((np.nan, 1), "finite"), ((5,), "two numbers"),
                      ((0, 100), "outside the levels")):
        with pytest.raises(InputError, match=said):
            den.denoise(vol[0], levels=bad)
    with pytest.raises(InputError, match="this model maps float32 data per b-scan"):
        den.denoise(vol[0].astype(np.float32), levels=levels)
    with pytest.raises(InputError, match="maps uint16 data per b-scan"):
        tiny().denoise(vol[0], levels=levels)  # percentile mapping: no levels


def test_the_default_batch_follows_the_device(monkeypatch):
    assert engine.default_batch_size("cpu") == engine.CPU_BATCH == tiny().batch_size
    monkeypatch.setattr(denoiser_module, "resolve_device", lambda device: torch.device("cuda", 0))
    assert engine.default_batch_size("cuda:0") == engine.CUDA_BATCH > engine.CPU_BATCH


def test_a_batch_capped_for_one_input_is_not_kept_for_the_next(monkeypatch):
    from napari_hdcyclegan import denoiser as module

    den = tiny(batch_size=4)
    monkeypatch.setattr(module, "cpu_batch_fit", lambda batch, hw, width, free: 1 if hw[0] > 20 else batch)
    monkeypatch.setattr(module, "available_memory", lambda: 10**9)
    big = [(a, b) for a, b, _ in den.iter_denoise(volume(np.uint8, (3, 24, 16)))]
    small = [(a, b) for a, b, _ in den.iter_denoise(volume(np.uint8, (5, 16, 16)))]
    assert big == [(0, 1), (1, 2), (2, 3)] and small == [(0, 4), (4, 5)] and den.batch_size == 4


def test_a_tensor_or_a_ragged_list_is_a_clear_input_error():
    den = tiny()
    with pytest.raises(InputError, match=r"torch tensor: pass tensor.cpu\(\).numpy\(\)"):
        den.denoise(torch.zeros(16, 16))
    with pytest.raises(InputError, match="got a ragged list"):
        den.denoise([[1.0] * 16] * 15 + [[1.0] * 15])


def test_the_recorded_dim_gain_of_a_part_is_the_one_its_levels_gave():
    den = tiny({"method": "dtype", "dim_median": 0.5})
    vol = (volume(np.uint16, (3, 16, 20)) // 16).astype(np.uint16)  # 12-bit values
    vol[0] //= 4
    whole = den.dim_gains(vol)[0]
    part = den.provenance(None, vol[0], den.volume_levels(vol))["dim_gains"][0]
    assert part == whole and den.dim_gains(vol[0])[0] != whole  # alone: its own 10 bits, another gain


@pytest.mark.parametrize("bad", ["abc", 2.5, 4.0, 0, True])
def test_a_batch_size_that_is_not_a_whole_number_is_an_input_error(bad):
    with pytest.raises(InputError, match="batch_size must be a whole number >= 1"):
        tiny(batch_size=bad) if bad else tiny().__setattr__("batch_size", bad)


@pytest.mark.parametrize("good", [3, np.int64(3), torch.tensor(3)])
def test_whole_numbers_of_numpy_and_torch_are_batch_sizes(good):
    assert tiny(batch_size=good).batch_size == 3
