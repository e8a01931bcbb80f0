"""A resident HDcycleGAN generator and the volume pipeline around it: batching, intensity, precision.

:class:`Denoiser` holds a generator on its device and denoises b-scans (axis 0 of a volume) in
batches that are read, normalised, denoised and mapped back one at a time, so memory stays bounded
for memory-mapped volumes of any length. Loading and sharing denoisers: :mod:`.engine`.

Intensity: each b-scan is mapped to [0, 1] with the model config's ``normalisation`` (robust
percentiles by default, see :func:`napari_hdcyclegan.intensity.unit_range`), the model output is
smoothed across A-scans by the config's ``lateral_sigma``, clipped to [0, 1] and mapped back with the
same ``(lo, hi)`` into the input's dtype. Non-finite input pixels (NaN, inf) are fed to the model as
0 / 1 and restored in the output. Under ``"dtype"`` normalisation, integer volumes other than uint8
are mapped by the bit depth of the whole volume's values (by their range when some are negative;
:func:`napari_hdcyclegan.intensity.integer_range`), found in one streamed pass first; a float b-scan
that a few extreme values would flatten to one grey level is refused, naming it
(:class:`napari_hdcyclegan.normalise.OutlierError`).

On the CPU the batch size is capped to what the available memory holds
(:func:`napari_hdcyclegan.memory.cpu_batch_fit`); an allocation that fails anyway halves the batch,
and a single b-scan that cannot fit is a :class:`MemoryError` with the numbers. Devices and
precisions: :mod:`.devices`; input checks and the intensity mapping: :mod:`.normalise`; feature
maps: :mod:`.feature_maps`.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import __version__
from .adjustments import lift, lower
from .devices import resolve_device, resolve_precision
from .errors import InputError, ModelError
from .feature_maps import probe_stage_channels, stage_feature_maps
from .intensity import DEFAULT_NORMALISATION, inverse_log_display, log_display
from .memory import available_memory, cpu_batch_fit, drop_pages, halved_batch, is_out_of_memory
from .model.checkpoint import MAX_LATERAL_SIGMA, ModelConfig, valid_lateral_sigma
from .model.choice import ModelChoice
from .model.networks import Generator, lateral_smooth, run_generator
from .normalise import (
    OutlierError,
    check_input,
    checked_levels,
    levels_cover,
    like_input,
    to_device,
    to_unit,
    unit_ranges,
    volume_range,
)
from .progress import CancelFn, ProgressFn, Steps, drive

__all__ = ["CPU_BATCH", "CUDA_BATCH", "Denoiser", "default_batch_size", "iter_denoised"]

#: Default b-scans per batch. On the CPUs measured (README, "Inference speed") one b-scan at a time was
#: as fast as any larger batch on two threads and takes the least memory; on a GPU larger batches fill
#: the device.
CPU_BATCH, CUDA_BATCH = 1, 32


def default_batch_size(device: str | torch.device) -> int:
    """:data:`CUDA_BATCH` on a CUDA device, :data:`CPU_BATCH` elsewhere (``device`` as ``resolve_device``
    takes it: ``"auto"``, ``"cpu"``, ``"cuda:N"``, ...)."""
    return CUDA_BATCH if resolve_device(device).type == "cuda" else CPU_BATCH


class Denoiser:
    """A generator resident on ``device`` with the intensity pipeline of its model config.

    Usually obtained from :func:`napari_hdcyclegan.engine.get_denoiser`, which caches it.

    Parameters
    ----------
    generator : Generator
        The HN -> LN generator (``G_L``); moved to ``device`` in eval mode without gradients.
    config : ModelConfig
        Its config: architecture and ``normalisation`` (docs/conventions.md).
    device : str or torch.device
        See :func:`resolve_device`.
    name, source, weights_sha256 : str, optional
        Provenance: display name, where the weights came from, their file's SHA-256.
    trained : bool, optional
        Overrides ``config.trained``.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast precision (:func:`resolve_precision`); settable later.
    batch_size : int, optional
        B-scans per batch (default 32 on CUDA, 4 elsewhere); settable later.

    Attributes
    ----------
    channels_last : bool
        Run in channels-last memory format (default on CUDA only: 4x slower on the project's CPU).

    Notes
    -----
    The object is shared by every caller of :func:`get_denoiser` (widgets, CLI, evaluation), so it
    holds nothing about one request: why ``"auto"`` chose it comes back from
    :func:`choose_denoiser` with each call and is passed to :meth:`provenance`.
    """

    def __init__(self, generator: Generator, config: ModelConfig, device: str | torch.device = "auto",
                 *, name: str | None = None, trained: bool | None = None, source: str = "",
                 weights_sha256: str | None = None, precision: str = "auto",
                 batch_size: int | None = None) -> None:
        self.device = resolve_device(device)
        self.config = config
        self.name = name or config.name
        self.trained = bool(config.trained if trained is None else trained)
        self.source = source
        self.weights_sha256 = weights_sha256
        self.precision = precision
        resolve_precision(precision, self.device)  # validate early
        self.batch_size = batch_size or default_batch_size(self.device)
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
        try:
            n = operator.index(value)  # ints of numpy, torch (0-d) and Python; not 2.5, not "4"
        except TypeError:
            n = 0
        if isinstance(value, bool) or n < 1:
            raise InputError(f"batch_size must be a whole number >= 1, got {value!r}")
        self._batch_size = n

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype autocast uses with the current ``precision`` (None = float32)."""
        return resolve_precision(self.precision, self.device)

    def with_lateral_sigma(self, sigma: float | None) -> Denoiser:
        """This model with another smoothing across A-scans (pixels; None: the model's own).

        Returns ``self`` when nothing changes, else a view sharing the generator (no copy of the
        weights) whose config, and so its provenance, carries ``sigma``; the shared resident
        denoiser is left as it is.
        """
        if sigma is None or float(sigma) == self.config.lateral_sigma:
            return self
        if not valid_lateral_sigma(float(sigma)):
            raise InputError(f"lateral smoothing must be from 0 to {MAX_LATERAL_SIGMA:g} pixels, got {sigma}")
        view = copy.copy(self)
        view.config = replace(self.config, lateral_sigma=float(sigma))
        return view

    # -- intensity ----------------------------------------------------------------------------
    def run_units(self, unit: torch.Tensor) -> torch.Tensor:
        """Generator and lateral smoothing on a (B, H, W) float32 [0, 1] batch on the device ->
        (B, H, W) float32 clipped to [0, 1] (the model's own units: see :meth:`model_input`)."""
        x = unit[:, None]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = self.autocast_dtype
        with torch.inference_mode():
            with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                y = run_generator(self.generator, x)[:, 0].float()
            # outside autocast: the smoothing's conv1d would otherwise run (and return) in bf16/fp16
            y = lateral_smooth(y, self.config.lateral_sigma)
        if not bool(torch.isfinite(y).all()):
            raise ModelError(f"model {self.name!r} produced NaN/inf values (corrupt weights or an overflow "
                             f"in {self.precision} precision); nothing was written")
        return y.clamp_(0.0, 1.0)

    def model_input(self, raw: np.ndarray, fixed: tuple[float, float] | None = None) -> np.ndarray:
        """What the generator sees for a (B, H, W) batch of raw values: float32 [0, 1], a raised background taken
        down and a dim b-scan lifted where the model asks for it (:mod:`~napari_hdcyclegan.adjustments`).

        ``fixed``: the volume's range, as :meth:`iter_denoise` passes it (``normalise.volume_range``).
        """
        with torch.inference_mode():
            return self._model_units(raw, fixed).float().cpu().numpy()

    def _model_units(self, raw: np.ndarray, fixed: tuple[float, float] | None = None) -> torch.Tensor:
        """:meth:`model_input` as a (B, H, W) tensor on the device. Call under ``torch.inference_mode()``."""
        return self._lift(self._unit_batch(raw, fixed)[1])[0]

    def _lift(self, unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``unit`` as the generator takes it, with the gain and the offset (:func:`adjustments.lift`)."""
        return lift(unit, self.normalisation)

    @property
    def normalisation(self) -> dict[str, Any]:
        """The model config's ``normalisation`` (:data:`intensity.DEFAULT_NORMALISATION` if unset)."""
        return self.config.normalisation or DEFAULT_NORMALISATION

    def _unit_batch(self, raw: np.ndarray, fixed: tuple[float, float] | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model input for a (B, H, W) batch of raw values: ``(x, unit, lo, span)``.

        ``x`` is the batch on the device (log-display first where the config says ``log_input``),
        ``unit`` the float32 [0, 1] input, ``lo``/``span`` (B, 1, 1) map the output back.
        ``fixed``: the volume's integer range under ``"dtype"`` (else this batch's values decide).
        Call under ``torch.inference_mode()``.
        """
        src = log_display(raw) if self.normalisation.get("log_input", False) else raw
        x = to_device(src, self.device)
        lo, hi = unit_ranges(x, self.normalisation, np.dtype(src.dtype), fixed)
        unit, lo3, span = to_unit(x, lo, hi)
        return x, unit, lo3, span

    def _denoise_batch(self, raw: np.ndarray, fixed: tuple[float, float] | None = None) -> np.ndarray:
        """Denoise a (B, H, W) batch of raw values; same dtype and range out (``fixed``: see _unit_batch)."""
        log_input = bool(self.normalisation.get("log_input", False))
        with torch.inference_mode():
            x, unit, lo3, span = self._unit_batch(raw, fixed)
            lifted, gain, offset = self._lift(unit)
            y = lower(self.run_units(lifted), gain, offset)
            y = y.to(x.dtype) * span + lo3
            out = y.cpu().numpy()
        if log_input:
            out = inverse_log_display(out)
        return like_input(out, raw)

    # -- public API ---------------------------------------------------------------------------
    def iter_denoise(self, data: Any, levels: tuple[float, float] | None = None
                     ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Denoise batch by batch, yielding each as it is done (the generator form of :meth:`denoise`).

        Parameters
        ----------
        data : array-like
            A 2D b-scan (one item, start 0, stop 1) or a 3D volume / memmap / lazy array with
            b-scans on axis 0; only one batch is read at a time.
        levels : tuple of float, optional
            :meth:`volume_levels` of the volume ``data`` is part of (one b-scan of it, a preview), so
            that the part maps as it does in the whole; default: ``data``'s own. InputError when
            they are not finite, not increasing, do not cover the data's values, or the model does
            not map this data by levels (:meth:`volume_levels` is None).

        Yields
        ------
        start, stop : int
            The b-scans of this batch.
        denoised : numpy.ndarray
            Always (stop - start, H, W), in the input's dtype and intensity range.

        Notes
        -----
        An out-of-memory error halves ``batch_size`` and retries the same b-scans; stop iterating
        to cancel between batches.
        """
        shape, dtype = check_input(data)
        n = 1 if len(shape) == 2 else shape[0]
        free = available_memory() if self.device.type == "cpu" else None
        # this input's cap on the batch, kept to this call: the denoiser is shared
        fit = self.batch_size if free is None else cpu_batch_fit(self.batch_size, shape[-2:],
                                                                  self.config.generator_width, free)
        given = None if levels is None else checked_levels(levels, dtype, self.normalisation)
        fixed = self.volume_levels(data) if given is None else given
        start = 0
        while start < n:
            batch = min(fit, self.batch_size)
            stop = min(n, start + batch)
            raw = np.asarray(data)[None] if len(shape) == 2 else np.asarray(data[start:stop])
            if given is not None:
                levels_cover(raw, given, start)
            try:
                out = self._denoise_batch(raw, fixed)
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                # for later calls too; never above what another thread halved it to meanwhile
                self.batch_size = min(self.batch_size, halved_batch(exc, self.device, shape[-2:], batch))
                self.empty_cache()
                continue
            except OutlierError as exc:
                raise (exc.at(start) if len(shape) == 3 else exc) from None  # name the b-scan of a volume
            if len(shape) == 3:
                drop_pages(data, start, stop)
            yield start, stop, out
            start = stop

    def volume_levels(self, data: Any) -> tuple[float, float] | None:
        """The levels every b-scan of ``data`` maps to [0, 1] by: for integer data under ``"dtype"``
        normalisation, :func:`~napari_hdcyclegan.normalise.volume_range` ((0, 255) for uint8, the
        values' bit depth over the whole volume for others); None where each b-scan maps by its own."""
        shape, dtype = check_input(data)
        return volume_range(data, shape, dtype, self.normalisation)

    def denoise(self, data: Any, progress: ProgressFn = None, cancel: CancelFn = None,
                out: np.ndarray | None = None, levels: tuple[float, float] | None = None) -> np.ndarray:
        """Denoise a 2D b-scan or 3D volume; same shape, dtype and intensity range out.

        Parameters
        ----------
        data : array-like
            As in :meth:`iter_denoise`.
        progress : callable, optional
            ``progress(done, total)``, called after each batch.
        cancel : callable, optional
            ``cancel()``, checked before each batch; True raises :class:`Cancelled`.
        out : numpy.ndarray, optional
            A preallocated array of the same shape and dtype (e.g. a writable memmap), so that a
            volume larger than memory streams to disk.
        levels : tuple of float, optional
            As in :meth:`iter_denoise`.

        Returns
        -------
        numpy.ndarray
            ``out`` (or a new array) holding the denoised data.

        Raises
        ------
        InputError
            For data that is not a numeric 2D/3D image of at least ``MIN_SIZE`` pixels, or an
            ``out`` that does not match.
        Cancelled
            When ``cancel()`` returned True.

        Notes
        -----
        The callback form of :func:`iter_denoised`.
        """
        return drive(iter_denoised(self, data, out, levels), progress, cancel)

    def feature_maps(self, bscan: Any, stage: str, channels: int | Sequence[int] | None = None,
                     levels: tuple[float, float] | None = None) -> np.ndarray:
        """Activation after ``stage`` for one b-scan, bilinearly upscaled to it
        (:func:`~napari_hdcyclegan.feature_maps.stage_feature_maps`: parameters, errors)."""
        return stage_feature_maps(self, bscan, stage, channels, levels)

    def stage_channels(self) -> dict[str, int]:
        """Number of channels of every generator stage, in forward order (``res1 .. res<n_res>``)."""
        if self._stage_channels is None:
            self._stage_channels = probe_stage_channels(self.generator, self.device)
        return dict(self._stage_channels)

    def dim_gains(self, data: Any, levels: tuple[float, float] | None = None) -> list[float] | None:
        """The gain :func:`adjustments.dim_gain` applies to each b-scan of ``data`` (1.0: untouched) when
        denoised with ``levels`` (:meth:`iter_denoise`); None when the model has no ``dim_median``.
        Reads every b-scan once more (one at a time)."""
        if not self.normalisation.get("dim_median"):
            return None  # without reading the data
        return self.input_adjustments(data, levels)["dim_gains"]

    def input_adjustments(self, data: Any, levels: tuple[float, float] | None = None) -> dict[str, list[float]]:
        """What :meth:`iter_denoise` does to each b-scan of ``data`` before the generator (and undoes after
        it), for a model whose normalisation asks for it: ``"floor_offsets"`` (``floor_percentile``: the
        background level taken down, in [0, 1] units of the input's mapping; 0.0: untouched) and
        ``"dim_gains"`` (``dim_median``: 1.0 untouched). Reads every b-scan once more (one at a time)."""
        norm = self.normalisation
        keys = [k for k, on in (("floor_offsets", norm.get("floor_percentile")), ("dim_gains", norm.get("dim_median")))
                if on]
        if not keys:
            return {}
        shape, dtype = check_input(data)
        fixed = volume_range(data, shape, dtype, norm) if levels is None else levels
        found: dict[str, list[float]] = {k: [] for k in keys}
        for i in range(1 if len(shape) == 2 else shape[0]):
            raw = np.asarray(data)[None] if len(shape) == 2 else np.asarray(data[i:i + 1])
            try:
                with torch.inference_mode():
                    _, gain, offset = self._lift(self._unit_batch(raw, fixed)[1])
            except OutlierError as exc:
                raise (exc.at(i) if len(shape) == 3 else exc) from None  # name the b-scan, as iter_denoise does
            if "dim_gains" in found:
                found["dim_gains"].append(1.0 if gain is None else round(float(gain.flatten()[0]), 3))
            if "floor_offsets" in found:
                found["floor_offsets"].append(0.0 if offset is None else round(float(offset.flatten()[0]), 6))
        return found

    def provenance(self, choice: ModelChoice | None = None, data: Any = None,
                   levels: tuple[float, float] | None = None) -> dict[str, Any]:
        """What produced a result: model, weights hash, config, device, precision, versions,
        (``choice``, from :func:`choose_denoiser`) why ``"auto"`` chose this model, and (``data``, the
        input, and the ``levels`` it was denoised with) what was done to each b-scan before the generator
        and undone after it (:meth:`input_adjustments`: ``floor_offsets``, ``dim_gains``)."""
        adjusted = self.input_adjustments(data, levels) if data is not None else {}
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
            **({"auto_choice": choice.reason} if choice is not None else {}),
            **adjusted,
        }

    def empty_cache(self) -> None:
        """Return cached GPU memory to the driver (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def __repr__(self) -> str:
        return (f"Denoiser(name={self.name!r}, trained={self.trained}, device={self.device}, "
                f"batch_size={self.batch_size}, precision={self.precision!r})")


def iter_denoised(denoiser: Any, data: Any, out: np.ndarray | None = None,
                  levels: tuple[float, float] | None = None) -> Steps[np.ndarray]:
    """Denoise ``data`` into ``out`` batch by batch: the generator form of :meth:`Denoiser.denoise`.

    Yields ``(done, total)`` b-scans (first ``(0, total)``, then after each batch; stop iterating
    to cancel between batches) and returns ``out`` (or a new array), so a napari worker can run
    it directly. ``denoiser`` is anything with :meth:`Denoiser.iter_denoise`; parameters and
    errors as in :meth:`Denoiser.denoise`.
    """
    shape, dtype = check_input(data)
    if out is None:
        out = np.empty(shape, dtype)
    elif tuple(out.shape) != shape or np.dtype(out.dtype) != dtype:
        raise InputError(f"out has shape {out.shape} / {out.dtype}, expected {shape} / {dtype}")
    view = out[None] if len(shape) == 2 else out
    total = view.shape[0]
    yield 0, total
    for start, stop, chunk in denoiser.iter_denoise(data, **({} if levels is None else {"levels": levels})):
        view[start:stop] = chunk
        yield stop, total
    return out
