"""Volume inference with a resident HDcycleGAN generator: batching, devices, precision, feature maps.

The model is loaded once per (weights, device) and stays on its device across calls
(:func:`get_denoiser`); switching to another model frees the old one (and its GPU memory).
B-scans (axis 0 of a volume) go through in batches that are read, normalised, denoised and mapped
back one at a time, so memory stays bounded for memory-mapped volumes of any length.

Intensity: each b-scan is mapped to [0, 1] with the model config's ``normalisation`` (robust
percentiles by default, see :func:`napari_hdcyclegan.intensity.unit_range`), the model output is
clipped to [0, 1] and mapped back with the same ``(lo, hi)`` into the input's dtype. Non-finite input
pixels (NaN, inf) are fed to the model as 0 / 1 and restored in the output. Under ``"dtype"``
normalisation, integer volumes other than uint8 are mapped by the bit depth of the whole volume's
values (:func:`napari_hdcyclegan.intensity.integer_range`), found in one streamed pass first.

On the CPU the batch size is capped to what the available memory holds (about
:data:`CPU_BYTES_PER_PIXEL` per pixel and generator width unit); an allocation that fails anyway
halves the batch, and a single b-scan that cannot fit is a :class:`MemoryError` with the numbers.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .errors import InputError, ModelError
from .memory import available_memory, drop_pages, is_out_of_memory, short_oom
from .intensity import integer_range, inverse_log_display, log_display
from .model.checkpoint import (
    WEIGHTS_FILE, CheckpointError, ModelConfig, load_model, resolve_model_dir, shipped_models,
)
from .model.choice import AUTO, AVERAGED_MODEL, ModelChoice, choose_model
from .model.networks import GENERATOR_STAGES, Generator, pad_to_multiple, run_generator
from .progress import Cancelled, CancelFn, ProgressFn, check_cancel, report

__all__ = [
    "DEFAULT_MODEL", "UNTRAINED_NAME", "PRECISIONS", "Cancelled", "CheckpointError", "Denoiser",
    "available_devices", "get_denoiser", "release", "resolve_device",
]

#: The default weights: "auto" picks a shipped model per input by its noise level (model/choice.py).
DEFAULT_MODEL = AUTO
UNTRAINED_NAME = "untrained (random weights)"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Default b-scans per batch. CPU throughput is flat in the batch size (bench_inference.py), so a
#: small batch keeps memory low; on a GPU larger batches fill the device.
CPU_BATCH, CUDA_BATCH = 4, 32
#: Seed of the untrained fallback, so that its (meaningless) output is at least reproducible.
UNTRAINED_SEED = 0
#: Smallest b-scan height/width the generator accepts.
MIN_SIZE = 9
#: Peak CPU memory of a forward pass per pixel and generator width unit (measured: 101-109 MB per
#: 496x512 b-scan at width 16, batches of 1 and 4, float32), used to cap CPU batch sizes.
CPU_BYTES_PER_PIXEL = 28
#: Share of the available memory a CPU batch may use.
CPU_MEMORY_SHARE = 0.7

_LOCK = threading.RLock()
_RESIDENT: dict[str, Any] = {"key": None, "denoiser": None}


def available_devices() -> list[str]:
    """Device choices for the CLI and widgets: ``["auto", "cpu", "cuda:0", ...]`` (and ``"mps"``)."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> first CUDA device if any, else CPU; an unavailable device is a ValueError."""
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}; choose one of {available_devices()}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available "
                             f"(choose one of {available_devices()})")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
        return torch.device("cuda", index)
    if dev.type == "mps" and "mps" not in available_devices():
        raise InputError(f"device {device!r} requested but MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {device!r}; choose one of {available_devices()}")
    return dev


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively (AVX512-BF16 / AMX).

    Without it, bf16 convolutions fall back to a slow reference kernel: measured on the project's
    AVX2 CPU, 105 s instead of 0.77 s for one 496x512 b-scan. So ``auto`` uses bf16 on CPU only here.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain float32)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (weights provenance)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shape_dtype(data: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array-like without reading it (memmaps and lazy page readers)."""
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        data = np.asarray(data)
    shape, dtype = tuple(int(s) for s in data.shape), np.dtype(data.dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"expected a numeric image, got dtype {dtype}")
    if len(shape) not in (2, 3):
        raise InputError(f"expected a 2D b-scan or a 3D volume (b-scans on axis 0), got shape {shape}")
    if 0 in shape:
        raise InputError(f"empty image of shape {shape}")
    if min(shape[-2:]) < MIN_SIZE:
        # InstanceNorm needs more than one pixel at the 1/8 scale of the bottleneck.
        raise InputError(f"b-scans must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got shape {shape}")
    return shape, dtype


def _exact_in_float32(dtype: np.dtype) -> bool:
    """Whether every value of ``dtype`` survives a float32 round trip (else compute in float64)."""
    return dtype.kind == "b" or dtype.itemsize <= 2 or dtype == np.float32


class Denoiser:
    """A generator resident on ``device`` with the intensity pipeline of its model config.

    Attributes: ``config`` (ModelConfig), ``device`` (torch.device), ``name``, ``trained``,
    ``batch_size`` (settable), ``precision`` ("auto" | "fp32" | "bf16" | "fp16", settable),
    ``channels_last`` (settable; default on CUDA only: 4x slower on the project's CPU).
    """

    def __init__(self, generator: Generator, config: ModelConfig, device: str | torch.device = "auto",
                 *, name: str | None = None, trained: bool | None = None, source: str = "",
                 weights_sha256: str | None = None, precision: str = "auto",
                 batch_size: int | None = None) -> None:
        self.device = resolve_device(device)
        self.config = config
        self.name = name or config.name
        self.choice: ModelChoice | None = None  # set by get_denoiser("auto", data=...)
        self.trained = bool(config.trained if trained is None else trained)
        self.source = source
        self.weights_sha256 = weights_sha256
        self.precision = precision
        resolve_precision(precision, self.device)  # validate early
        self.batch_size = batch_size or (CUDA_BATCH if self.device.type == "cuda" else CPU_BATCH)
        self.channels_last = self.device.type == "cuda"
        self.generator = generator.eval().to(self.device)
        for p in self.generator.parameters():
            p.requires_grad_(False)
        self._stage_channels: dict[str, int] | None = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """B-scans per batch (halved automatically on a CUDA out-of-memory error)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if int(value) < 1:
            raise InputError(f"batch_size must be >= 1, got {value}")
        self._batch_size = int(value)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype autocast uses with the current ``precision`` (None = float32)."""
        return resolve_precision(self.precision, self.device)

    # -- intensity ----------------------------------------------------------------------------
    def _to_tensor(self, raw: np.ndarray) -> torch.Tensor:
        """A batch (B, H, W) of raw values as a float tensor on the device (exact for the dtype)."""
        arr = np.ascontiguousarray(raw)
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))  # e.g. big-endian TIFF memmaps
        if arr.dtype.kind == "b":
            arr = arr.view(np.uint8)
        if not arr.flags.writeable:
            arr = arr.copy()  # read-only memmaps: torch wants writable memory
        t = torch.from_numpy(arr)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        else:
            t = t.to(self.device)
        return t.to(torch.float32 if _exact_in_float32(raw.dtype) else torch.float64)

    def _unit_ranges(self, x: torch.Tensor, dtype: np.dtype, fixed: tuple[float, float] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per b-scan ``(lo, hi)`` (B,) as :func:`napari_hdcyclegan.intensity.unit_range` gives them.

        ``fixed``: the volume's integer range under ``"dtype"`` (else this batch's values decide).
        """
        norm = self.config.normalisation or {"method": "percentile"}
        method = norm.get("method", "percentile")
        flat = x.reshape(x.shape[0], -1)
        finite = torch.isfinite(flat)
        if method == "percentile":
            q = torch.tensor([float(norm.get("low", 0.5)), float(norm.get("high", 99.5))],
                             dtype=flat.dtype, device=flat.device) / 100
            lohi = torch.nanquantile(flat.masked_fill(~finite, float("nan")), q, dim=1)
            lohi = torch.nan_to_num(lohi, nan=0.0)  # all-NaN b-scan: (0, 0) as robust_range
            return lohi[0], lohi[1]
        if method == "dtype":
            n = x.shape[0]
            if dtype.kind in "uib":
                lo, hi = fixed or integer_range(flat.min().item(), flat.max().item(), dtype)
                return flat.new_full((n,), lo), flat.new_full((n,), hi)
            lo = flat.masked_fill(~finite, float("inf")).amin(dim=1)
            hi = flat.masked_fill(~finite, float("-inf")).amax(dim=1)
            none = ~finite.any(dim=1)
            lo, hi = lo.masked_fill(none, 0.0), hi.masked_fill(none, 0.0)
            in_unit = (lo >= -1e-3) & (hi <= 1 + 1e-3)
            return torch.where(in_unit, 0.0, lo), torch.where(in_unit, 1.0, hi)
        raise ValueError(f"unknown normalisation method {method!r} in the model config")

    def _run(self, unit: torch.Tensor) -> torch.Tensor:
        """Generator on a (B, H, W) float32 [0, 1] batch -> (B, H, W) float32 clipped to [0, 1]."""
        x = unit[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = self.autocast_dtype
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=amp or torch.float32,
                                                    enabled=amp is not None):
            y = run_generator(self.generator, x)[:, 0].float()
        if not bool(torch.isfinite(y).all()):
            raise ModelError(f"model {self.name!r} produced NaN/inf values (corrupt weights or an overflow "
                             f"in {self.precision} precision); nothing was written")
        return y.clamp_(0.0, 1.0)

    def _denoise_batch(self, raw: np.ndarray, fixed: tuple[float, float] | None = None) -> np.ndarray:
        """Denoise a (B, H, W) batch of raw values; same dtype and range out (``fixed``: see _unit_ranges)."""
        dtype = raw.dtype
        log_input = bool((self.config.normalisation or {}).get("log_input", False))
        src = log_display(raw) if log_input else raw
        with torch.inference_mode():
            x = self._to_tensor(src)
            lo, hi = self._unit_ranges(x, np.dtype(src.dtype), fixed)
            lo3, span = lo[:, None, None], (hi - lo)[:, None, None]
            safe = torch.where(span > 0, span, torch.ones_like(span))
            unit = torch.where(span > 0, (x - lo3) / safe, torch.zeros_like(x))
            unit = torch.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0).float()
            y = self._run(unit).to(x.dtype) * span + lo3
            out = y.cpu().numpy()
        if log_input:
            out = inverse_log_display(out)
        if dtype.kind in "iub":
            if dtype.kind != "b":
                info = np.iinfo(dtype)
                np.clip(np.rint(out, out=out), info.min, info.max, out=out)
            else:
                out = out >= 0.5
            return out.astype(dtype)
        out = out.astype(dtype)
        bad = ~np.isfinite(raw)
        if bad.any():
            out[bad] = raw[bad]  # NaN stays NaN, inf stays inf
        return out

    # -- public API ---------------------------------------------------------------------------
    def iter_denoise(self, data: Any) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, denoised)`` per batch; ``denoised`` is always (stop - start, H, W).

        ``data`` is a 2D b-scan (one item, start 0, stop 1) or a 3D volume / memmap / lazy array
        with b-scans on axis 0; only one batch is read at a time. A CUDA out-of-memory error halves
        ``batch_size`` and retries the same b-scans.
        """
        shape, dtype = _shape_dtype(data)
        n = 1 if len(shape) == 2 else shape[0]
        self._cap_cpu_batch(shape[-2:])
        fixed = self._volume_range(data, shape, dtype)
        start = 0
        while start < n:
            stop = min(n, start + self.batch_size)
            raw = np.asarray(data)[None] if len(shape) == 2 else np.asarray(data[start:stop])
            try:
                out = self._denoise_batch(raw, fixed)
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                self._halve_batch(exc, shape[-2:])
                continue
            if len(shape) == 3:
                drop_pages(data, start, stop)
            yield start, stop, out
            start = stop

    def _halve_batch(self, exc: BaseException, hw: tuple[int, ...]) -> None:
        """After an allocation failure: halve the batch, or explain that one b-scan does not fit."""
        if self.batch_size == 1:
            raise MemoryError(f"out of memory on {self.device} for one {hw[0]}x{hw[1]} b-scan "
                              f"({short_oom(exc)}); free memory or use a smaller image") from exc
        self.batch_size = max(1, self.batch_size // 2)
        self.empty_cache()
        warnings.warn(f"out of memory on {self.device}: batch size halved to {self.batch_size}",
                      RuntimeWarning, stacklevel=3)

    def _cap_cpu_batch(self, hw: tuple[int, ...]) -> None:
        """On the CPU, lower ``batch_size`` to what the available memory holds (refuse if not one)."""
        free = available_memory()
        if self.device.type != "cpu" or free is None:
            return
        per_bscan = CPU_BYTES_PER_PIXEL * hw[0] * hw[1] * self.config.generator_width
        fits = int(free * CPU_MEMORY_SHARE // per_bscan)
        if fits < 1:
            raise MemoryError(f"one {hw[0]}x{hw[1]} b-scan needs about {per_bscan / 2**20:.0f} MB on the CPU; "
                              f"only {free / 2**20:.0f} MB are available")
        if self.batch_size > fits:
            warnings.warn(f"batch size {self.batch_size} does not fit in {free / 2**20:.0f} MB of available "
                          f"memory: using {fits}", RuntimeWarning, stacklevel=3)
            self.batch_size = fits

    def _volume_range(self, data: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[float, float] | None:
        """The whole volume's :func:`integer_range` under ``"dtype"`` (one streamed min/max pass)."""
        norm = self.config.normalisation or {}
        if norm.get("method") != "dtype" or norm.get("log_input") or dtype.kind not in "uib":
            return None
        if dtype == np.uint8 or dtype.kind == "b":
            return integer_range(0, 1, dtype)
        if len(shape) == 2:
            arr = np.asarray(data)
            return integer_range(arr.min(), arr.max(), dtype)
        lo, hi, step = None, None, 16
        for start in range(0, shape[0], step):
            chunk = np.asarray(data[start:start + step])
            lo = chunk.min() if lo is None else min(lo, chunk.min())
            hi = chunk.max() if hi is None else max(hi, chunk.max())
            drop_pages(data, start, start + step)
        return integer_range(lo, hi, dtype)

    def denoise(self, data: Any, progress: ProgressFn = None, cancel: CancelFn = None,
                out: np.ndarray | None = None) -> np.ndarray:
        """Denoise a 2D b-scan or 3D volume; same shape, dtype and intensity range out.

        ``progress(done, total)`` is called after each batch and ``cancel()`` checked before each
        (raising :class:`Cancelled`). ``out`` may be a preallocated array (e.g. a writable memmap)
        of the same shape and dtype, so that a volume larger than memory streams to disk.
        """
        shape, dtype = _shape_dtype(data)
        if out is None:
            out = np.empty(shape, dtype)
        elif tuple(out.shape) != shape or np.dtype(out.dtype) != dtype:
            raise InputError(f"out has shape {out.shape} / {out.dtype}, expected {shape} / {dtype}")
        view = out[None] if len(shape) == 2 else out
        total = view.shape[0]
        report(progress, 0, total)
        check_cancel(cancel)
        for start, stop, chunk in self.iter_denoise(data):
            view[start:stop] = chunk
            report(progress, stop, total)
            if stop < total:
                check_cancel(cancel)
        return out

    def _unit_bscan(self, bscan: Any) -> torch.Tensor:
        """One b-scan as a (1, 1, H, W) float32 [0, 1] tensor on the device (model input)."""
        shape, _ = _shape_dtype(bscan)
        if len(shape) != 2:
            raise ValueError(f"feature_maps needs one 2D b-scan, got shape {shape}")
        raw = np.asarray(bscan)[None]
        log_input = bool((self.config.normalisation or {}).get("log_input", False))
        src = log_display(raw) if log_input else raw
        with torch.inference_mode():
            x = self._to_tensor(src)
            lo, hi = self._unit_ranges(x, np.dtype(src.dtype))
            span = (hi - lo)[:, None, None]
            safe = torch.where(span > 0, span, torch.ones_like(span))
            unit = torch.where(span > 0, (x - lo[:, None, None]) / safe, torch.zeros_like(x))
            unit = torch.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
        return unit.float()[:, None]

    def feature_maps(self, bscan: Any, stage: str,
                     channels: int | Sequence[int] | None = None) -> np.ndarray:
        """Activation after ``stage`` for one b-scan, bilinearly upscaled to it: float32 (C, H, W).

        ``channels``: None (all), one index or a sequence of indices. Runs in float32.
        """
        if stage not in GENERATOR_STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {GENERATOR_STAGES}")
        n_channels = self.stage_channels()[stage]
        if channels is None:
            index = list(range(n_channels))
        else:
            index = [int(channels)] if np.isscalar(channels) else [int(c) for c in channels]
            bad = [c for c in index if not -n_channels <= c < n_channels]
            if bad or not index:
                raise ValueError(f"stage {stage!r} has {n_channels} channels; got channels {channels!r}")
        x = self._unit_bscan(bscan)
        h, w = x.shape[-2:]
        padded, _ = pad_to_multiple(x, 8)
        with torch.inference_mode():
            for name, act in self.generator.stages(padded):
                if name == stage:
                    break
            act = act[:, index].float()
            # Upscale to the padded size, then crop: keeps the geometry of the padded forward pass.
            act = F.interpolate(act, size=padded.shape[-2:], mode="bilinear", align_corners=False)
            return act[0, :, :h, :w].cpu().numpy().astype(np.float32, copy=False)

    def stage_channels(self) -> dict[str, int]:
        """Number of channels of every generator stage, in forward order."""
        if self._stage_channels is None:
            probe = torch.zeros(1, 1, 16, 16, device=self.device)
            with torch.inference_mode():
                self._stage_channels = {name: int(a.shape[1]) for name, a in self.generator.stages(probe)}
        return dict(self._stage_channels)

    def provenance(self) -> dict[str, Any]:
        """What produced a result: model, weights hash, config, device, precision, versions."""
        return {
            "model": self.name,
            "trained": self.trained,
            "weights": self.source,
            "weights_sha256": self.weights_sha256,
            "config": self.config.to_json(),
            "device": str(self.device),
            "precision": self.precision,
            "autocast_dtype": str(self.autocast_dtype).replace("torch.", "") if self.autocast_dtype else "float32",
            "napari_hdcyclegan": __version__,
            "torch": torch.__version__,
            **({"auto_choice": self.choice.reason} if self.choice is not None else {}),
        }

    def empty_cache(self) -> None:
        """Return cached GPU memory to the driver (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return (f"Denoiser(name={self.name!r}, trained={self.trained}, device={self.device}, "
                f"batch_size={self.batch_size}, precision={self.precision!r})")


def _untrained(device: str | torch.device) -> Denoiser:
    """The clearly labelled fallback: a seeded, randomly initialised paper-size generator."""
    config = ModelConfig(name=UNTRAINED_NAME, trained=False,
                         description="randomly initialised generator: no trained weights are shipped yet",
                         provenance={"init": f"torch default init, seed {UNTRAINED_SEED}"})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        gen = Generator(config.generator_width, config.n_res)
    return Denoiser(gen, config, device, name=UNTRAINED_NAME, trained=False,
                    source=f"random init (seed {UNTRAINED_SEED})")


def _load(weights: str | os.PathLike, device: str | torch.device) -> Denoiser:
    """Load a shipped model or model directory onto ``device``."""
    model_dir = resolve_model_dir(weights)
    nets, config = load_model(model_dir, parts=("G_L",))
    name = config.name if config.name and config.name != "untrained" else model_dir.name
    return Denoiser(nets["G_L"], config, device, name=name, source=str(weights),
                    weights_sha256=_file_sha256(model_dir / WEIGHTS_FILE))


def _cache_key(weights: str | os.PathLike, device: torch.device) -> tuple:
    """Identity of a model on a device; includes the weights file's mtime so retraining reloads."""
    if str(weights) == AVERAGED_MODEL and AVERAGED_MODEL not in shipped_models():
        return (UNTRAINED_NAME, str(device))
    model_dir = resolve_model_dir(weights).resolve()
    stat = (model_dir / WEIGHTS_FILE).stat() if (model_dir / WEIGHTS_FILE).exists() else None
    return (str(model_dir), stat and (stat.st_mtime_ns, stat.st_size), str(device))


def release() -> None:
    """Drop the resident model and free its (GPU) memory."""
    with _LOCK:
        old = _RESIDENT["denoiser"]
        _RESIDENT["denoiser"] = _RESIDENT["key"] = None
        if old is not None:
            cuda = old.device.type == "cuda"
            old.generator.to("cpu")
            del old
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


def get_denoiser(weights: str | os.PathLike = DEFAULT_MODEL, device: str = "auto", data: Any = None
                 ) -> Denoiser:
    """The resident :class:`Denoiser` for ``weights`` (shipped name or model directory) on ``device``.

    ``weights="auto"`` (the default) picks the shipped model that suits ``data`` (a b-scan or volume)
    by its measured noise level (:func:`napari_hdcyclegan.model.choice.choose_model`); the choice
    and its reason are in ``denoiser.choice`` and its provenance. Without ``data`` it takes the
    averaged-scan model. Cached: the same object comes back while weights and device stay the same;
    another model frees the previous one first. While no trained weights for the default are
    shipped, it falls back to a randomly initialised generator (``trained=False``, name
    :data:`UNTRAINED_NAME`) and warns. An explicit bad path raises :class:`CheckpointError`.
    """
    choice = None
    if str(weights) == AUTO:
        choice = choose_model(data) if data is not None else None
        weights = choice.weights if choice is not None else AVERAGED_MODEL
    denoiser = _resident(weights, resolve_device(device))
    denoiser.choice = choice
    return denoiser


def _resident(weights: str | os.PathLike, dev: torch.device) -> Denoiser:
    """The cached denoiser for ``weights`` on ``dev``, loading (and freeing the old one) on a change."""
    key = _cache_key(weights, dev)
    with _LOCK:
        if _RESIDENT["key"] == key and _RESIDENT["denoiser"] is not None:
            denoiser = _RESIDENT["denoiser"]
        else:
            release()
            if key[0] == UNTRAINED_NAME:
                denoiser = _untrained(dev)
            else:
                denoiser = _load(weights, dev)
            _RESIDENT["key"], _RESIDENT["denoiser"] = key, denoiser
    if not denoiser.trained and key[0] == UNTRAINED_NAME:
        warnings.warn(f"no trained weights for {AVERAGED_MODEL!r} are shipped yet: using an "
                      f"{UNTRAINED_NAME} model whose output is NOT a meaningful denoising",
                      UserWarning, stacklevel=2)
    return denoiser
