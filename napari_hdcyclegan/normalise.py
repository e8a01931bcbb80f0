"""Model input from raw images: checks, device tensors and the per-b-scan intensity mapping.

:func:`check_input` validates an image without reading it, :func:`to_device` moves a batch to the
model's device exactly, :func:`volume_range` finds a volume's integer range in one streamed pass.

:func:`napari_hdcyclegan.intensity.unit_range` defines the mapping of a b-scan to the model's
[0, 1] input for one numpy image; :func:`unit_ranges` computes the same ``(lo, hi)`` for a whole
batch at once on the device the batch is already on (tests/test_engine.py checks that they agree),
and :func:`to_unit` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .adjustments import DIM_TOLERANCE, MAX_DIM_GAIN, dim_gain, floor_offset  # noqa: F401 - re-exported
from .errors import InputError
from .intensity import DEFAULT_NORMALISATION, integer_range
from .memory import drop_pages

__all__ = ["DIM_TOLERANCE", "MAX_DIM_GAIN", "MIN_SIZE", "OutlierError", "check_input", "dim_gain", "empty_bscans",
           "floor_offset", "like_input",
           "refuse_flattening_outliers", "to_device", "to_unit", "unit_ranges", "volume_range"]

#: Smallest b-scan height/width the generator accepts.
MIN_SIZE = 9
#: Under ``"dtype"``, a float b-scan whose middle 99 % of values fill less than this part of its
#: min..max range is refused: mapped by its min..max, it would reach the model as one grey level.
OUTLIER_FRACTION = 1e-5
#: ... or whose values leave an empty gap over this part of the range with under MARKER_SHARE of them on
#: one side of it: a few no-data markers (-9999 below data in 0..1, 65535 above 12-bit data).
MARKER_GAP = 0.9
MARKER_SHARE = 0.05


class OutlierError(InputError):
    """A b-scan of a batch refused by :func:`unit_ranges`; ``row`` is its place in the batch, so that
    the caller, who knows where the batch starts, can name it (:meth:`at`)."""

    def __init__(self, row: int, reason: str) -> None:
        self.row, self.reason = row, reason
        super().__init__(f"a b-scan's {reason}")

    def at(self, first: int) -> InputError:
        """The same refusal naming the b-scan of a volume whose batch starts at b-scan ``first``."""
        return InputError(f"b-scan {first + self.row}: {self.reason}")


def unit_ranges(x: torch.Tensor, normalisation: Mapping[str, Any] | None, dtype: np.dtype,
                fixed: tuple[float, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per b-scan ``(lo, hi)``, each of shape (B,), as :func:`intensity.unit_range` gives them.

    Parameters
    ----------
    x : torch.Tensor
        A (B, H, W) float batch of raw (or log-display) values.
    normalisation : mapping or None
        The model config's ``normalisation`` (None: :data:`intensity.DEFAULT_NORMALISATION`).
    dtype : numpy.dtype
        The values' dtype before the float conversion (integer ranges depend on it).
    fixed : (float, float), optional
        The whole volume's integer range under ``"dtype"`` (else this batch's values decide).
    """
    norm = normalisation or DEFAULT_NORMALISATION
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
            ilo, ihi = fixed or integer_range(flat.min().item(), flat.max().item(), dtype)
            return flat.new_full((n,), ilo), flat.new_full((n,), ihi)
        lo = flat.masked_fill(~finite, float("inf")).amin(dim=1)
        hi = flat.masked_fill(~finite, float("-inf")).amax(dim=1)
        none = ~finite.any(dim=1)
        lo, hi = lo.masked_fill(none, 0.0), hi.masked_fill(none, 0.0)
        in_unit = (lo >= -1e-3) & (hi <= 1 + 1e-3)
        _refuse_outliers(flat, finite, lo, hi, ~in_unit)
        return torch.where(in_unit, 0.0, lo), torch.where(in_unit, 1.0, hi)
    raise ValueError(f"unknown normalisation method {method!r} in the model config")


def _refuse_outliers(flat: torch.Tensor, finite: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                     check: torch.Tensor) -> None:
    """Refuse a float b-scan (rows ``check`` of ``flat``) mapped by its min..max that a few extreme
    values (no-data markers such as float32 max, -9999, a stray 1e30) would flatten to one grey level."""
    if not bool(check.any()):
        return
    step = max(1, flat.shape[1] // 65536)  # a strided sample tells the bulk's spread, and quantile stays small
    sample = flat[:, ::step].masked_fill(~finite[:, ::step], float("nan"))
    bad, a, b = marker_rows(sample, lo, hi)
    bad &= check
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise OutlierError(i, f"values span {lo[i].item():.3g} to {hi[i].item():.3g} but nearly all lie in "
                              f"[{a[i].item():.4g}, {b[i].item():.4g}]: a few extreme values (no-data markers?) "
                              "would squeeze the rest into a sliver of the range the model sees; set them to NaN "
                              "(NaN is kept) or clip them")


def marker_rows(sample: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of ``sample`` (B, N; NaN = no value) whose min..max ``lo``/``hi`` (B,) a few markers set.

    Mapped by ``lo``..``hi``, such a row's bulk would reach the model as (nearly) one grey level: its
    middle 99 % fill less than :data:`OUTLIER_FRACTION` of the span (a stray 1e30), or the values leave
    an empty gap over :data:`MARKER_GAP` of the span with under :data:`MARKER_SHARE` of them on one side
    (-9999 below data in 0..1, 65535 above 12-bit data). A row whose bulk is one value (a blank b-scan
    with a few bright pixels) has nothing to flatten. Returns the rows and each row's bulk (lowest,
    highest value).
    """
    q = torch.tensor([0.005, 0.995], dtype=sample.dtype, device=sample.device)
    a, b = torch.nanquantile(sample, q, dim=1)
    half_span = hi / 2 - lo / 2  # halves: hi - lo itself may overflow
    narrow = b - a < 2 * OUTLIER_FRACTION * half_span
    values = torch.cat([lo[:, None], sample, hi[:, None]], dim=1).sort(dim=1).values  # NaN (no value) last
    count = (~torch.isnan(values)).sum(dim=1)  # shares count values only: a masked region changes nothing
    gaps = values[:, 1:] / 2 - values[:, :-1] / 2
    gaps = gaps.masked_fill(torch.isnan(gaps), float("-inf"))
    gap, at = gaps.max(dim=1)
    below = (at + 1).to(sample.dtype) / count.clamp_min(1).to(sample.dtype)
    gapped = (gap > MARKER_GAP * half_span) & (torch.minimum(below, 1 - below) < MARKER_SHARE) & ~narrow
    edge_up = values.gather(1, (at + 1)[:, None])[:, 0]  # the bulk above a gap
    edge_down = values.gather(1, at[:, None])[:, 0]  # the bulk below it
    bulk_lo = torch.where(gapped & (below < 0.5), edge_up, torch.where(gapped, lo, a))
    bulk_hi = torch.where(gapped & (below >= 0.5), edge_down, torch.where(gapped, hi, b))
    return (b > a) & (narrow | gapped), bulk_lo, bulk_hi


def _wide_span(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lo`` and ``hi - lo`` shaped (B, 1, 1) in float64, for values whose span overflows float32
    (e.g. -3e38 .. 3e38); beyond float64 the image is refused."""
    lo, hi = lo.double(), hi.double()
    span = hi - lo
    if not bool(torch.isfinite(span).all()):
        raise InputError(f"pixel values from {lo.min().item():.3g} to {hi.max().item():.3g} span more than "
                         "float64 holds; rescale the image")
    return lo[:, None, None], span[:, None, None]


def to_unit(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map a (B, H, W) batch to float32 [0, 1] with per-b-scan ``lo``/``hi`` of shape (B,).

    Returns
    -------
    unit : torch.Tensor
        Float32 (B, H, W) in [0, 1]; a flat b-scan (``hi == lo``) maps to 0, NaN to 0, +inf to 1.
    lo3, span : torch.Tensor
        ``lo`` and ``hi - lo`` shaped (B, 1, 1), in ``x``'s dtype (float64 where ``hi - lo``
        overflows float32), to map the output back.
    """
    lo3, span = lo[:, None, None], (hi - lo)[:, None, None]
    if not bool(torch.isfinite(span).all()):
        lo3, span = _wide_span(lo, hi)  # else (x - lo) / inf maps every pixel to 0, and back to NaN
    safe = torch.where(span > 0, span, torch.ones_like(span))
    unit = torch.where(span > 0, (x - lo3) / safe, torch.zeros_like(x))
    unit = torch.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0).float()
    return unit, lo3, span


def check_input(data: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array-like without reading it (memmaps and lazy page readers).

    Raises
    ------
    InputError
        Unless ``data`` is a numeric (not bool), non-empty 2D b-scan or 3D volume (b-scans on axis 0) with
        b-scans of at least :data:`MIN_SIZE` pixels each way.
    """
    if isinstance(data, torch.Tensor):  # numpy cannot read its dtype; converting would hide a GPU copy
        raise InputError("expected a numpy or array-like image, got a torch tensor: pass tensor.cpu().numpy()")
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        try:
            data = np.asarray(data)
        except ValueError:
            raise InputError(f"expected a 2D b-scan or a 3D volume, got a ragged {type(data).__name__}") from None
    shape, dtype = tuple(int(s) for s in data.shape), np.dtype(data.dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"expected a numeric image, got dtype {dtype}")
    if dtype.kind == "b":  # a denoised mask could only come back as 0/1 again: refuse rather than mangle
        raise InputError("a binary (bool) image is a mask, not OCT intensities: nothing to denoise")
    if len(shape) not in (2, 3):
        raise InputError(f"expected a 2D b-scan or a 3D volume (b-scans on axis 0), got shape {shape}")
    if 0 in shape:
        raise InputError(f"empty image of shape {shape}")
    if min(shape[-2:]) < MIN_SIZE:
        # InstanceNorm needs more than one pixel at the 1/8 scale of the bottleneck.
        colour = (len(shape) == 3 and shape[-1] in (3, 4) and min(shape[:2]) >= MIN_SIZE)
        hint = (f" ({shape[0]} b-scans of {shape[1]}x{shape[2]}; a last axis of {shape[-1]} looks like colour "
                "channels: save the image as RGB or as one gray b-scan)") if colour else ""
        raise InputError(f"b-scans must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got shape {shape}{hint}")
    return shape, dtype


def empty_bscans(data: Any, refuse_outliers: bool = False) -> list[int]:
    """Places of the b-scans of a 2D b-scan or 3D stack that hold no finite pixel (all NaN or inf).

    Nothing in them can be denoised: :func:`like_input` gives them back as they are. Integer data has
    none. One b-scan is read at a time, so a memory-mapped volume is not loaded whole. With
    ``refuse_outliers``, the same pass refuses the first b-scan that :func:`refuse_flattening_outliers`
    refuses, and an integer volume that :func:`volume_range` refuses (before any model is chosen or run
    on the scan).
    """
    if not np.issubdtype(np.dtype(data.dtype), np.floating):
        if refuse_outliers and np.dtype(data.dtype).kind in "iu":  # the integer refusal is the volume's
            volume_range(data, tuple(data.shape), np.dtype(data.dtype), {"method": "dtype"})
        return []
    if data.ndim == 2:
        if refuse_outliers:
            refuse_flattening_outliers(np.asarray(data))
        return [] if np.isfinite(data).any() else [0]
    empty = []
    for i in range(data.shape[0]):
        bscan = np.asarray(data[i])
        if refuse_outliers:
            refuse_flattening_outliers(bscan, i)
        if not np.isfinite(bscan).any():
            empty.append(i)
        drop_pages(data, i, i + 1)  # a memory-mapped volume's pages do not stay resident after this pass
    return empty


def refuse_flattening_outliers(bscan: np.ndarray, index: int | None = None) -> None:
    """Raise the models' one-line refusal of a float b-scan that a few extreme values (no-data markers)
    would flatten under the ``"dtype"`` normalisation of every shipped model (:func:`unit_ranges`);
    ``index`` is its place in a volume (None: a single b-scan). Other dtypes pass."""
    if bscan.dtype.kind != "f":
        return
    finite = np.isfinite(bscan)
    lo, hi = bscan.min(where=finite, initial=np.inf), bscan.max(where=finite, initial=-np.inf)
    if lo >= -1e-3 and hi <= 1 + 1e-3:  # unit_ranges' own test: [0, 1] is taken as it is, nothing to flatten
        return
    try:  # the models' own conversion (to_device), so that both judge the same values at the same precision
        unit_ranges(to_device(np.asarray(bscan)[None], torch.device("cpu")), {"method": "dtype"}, bscan.dtype)
    except OutlierError as exc:
        raise (exc if index is None else exc.at(index)) from None


def _exact_in_float32(dtype: np.dtype) -> bool:
    """Whether every value of ``dtype`` survives a float32 round trip (else compute in float64)."""
    return dtype.kind == "b" or dtype.itemsize <= 2 or dtype == np.float32


def to_device(raw: np.ndarray, device: torch.device) -> torch.Tensor:
    """A batch (B, H, W) of raw values as a float tensor on ``device`` (float64 where float32 is not exact)."""
    arr = np.ascontiguousarray(raw)
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))  # e.g. big-endian TIFF memmaps
    if arr.dtype.kind == "b":
        arr = arr.view(np.uint8)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
        # computed in float64 anyway; torch refuses numpy's (u)longlong (TIFF uint64 pages) and has
        # no unsigned 64-bit arithmetic
        arr = arr.astype(np.float64)
    if not arr.flags.writeable:
        arr = arr.copy()  # read-only memmaps: torch wants writable memory
    t = torch.from_numpy(arr)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    return t.to(torch.float32 if _exact_in_float32(raw.dtype) else torch.float64)


def maps_by_levels(dtype: np.dtype, normalisation: Mapping[str, Any]) -> bool:
    """True when ``normalisation`` maps data of ``dtype`` by fixed levels (integers under ``"dtype"``)."""
    norm = normalisation
    return norm.get("method") == "dtype" and not norm.get("log_input") and np.dtype(dtype).kind in "uib"


def volume_range(data: Any, shape: tuple[int, ...], dtype: np.dtype, normalisation: Mapping[str, Any]
                 ) -> tuple[float, float] | None:
    """The whole volume's :func:`integer_range` under ``"dtype"`` (one streamed min/max pass), else None."""
    if not maps_by_levels(dtype, normalisation):
        return None
    if dtype == np.uint8 or dtype.kind == "b":
        return integer_range(0, 1, dtype)
    chunks = [(0, 1)] if len(shape) == 2 else [(i, min(shape[0], i + 16)) for i in range(0, shape[0], 16)]
    lo, hi, samples = np.inf, -np.inf, []
    for start, stop in chunks:
        chunk = np.asarray(data) if len(shape) == 2 else np.asarray(data[start:stop])
        lo, hi = min(lo, chunk.min()), max(hi, chunk.max())
        budget = max(1024, 2**20 // len(chunks))  # about 2**20 values in all: the spread, not every pixel
        samples.append(chunk.ravel()[::max(1, chunk.size // budget)].astype(np.float64))
        if len(shape) == 3:
            drop_pages(data, start, stop)
    sample = np.concatenate(samples)
    _refuse_integer_markers(sample[::max(1, sample.size // 2**20)], float(lo), float(hi), dtype)
    return integer_range(lo, hi, dtype)


def checked_levels(levels: Any, dtype: np.dtype, normalisation: Mapping[str, Any]) -> tuple[float, float]:
    """``levels`` given for data of ``dtype`` (a part of a volume: :func:`volume_range` of the whole) as
    two floats; InputError when the model does not map such data by levels or they cannot be levels."""
    if not maps_by_levels(dtype, normalisation):
        raise InputError(f"levels apply to integer data under 'dtype' normalisation; this model maps {dtype} "
                         "data per b-scan: leave levels out")
    try:
        lo, hi = (float(v) for v in levels)
    except (TypeError, ValueError):
        raise InputError(f"levels must be two numbers (low, high), got {levels!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"levels must be finite with low < high, got {levels!r}")
    return lo, hi


def levels_cover(raw: np.ndarray, levels: tuple[float, float], start: int) -> None:
    """InputError unless every value of the b-scans ``raw`` (from ``start`` on) lies within ``levels``."""
    lo, hi = float(np.min(raw)), float(np.max(raw))
    if lo < levels[0] or hi > levels[1]:
        raise InputError(f"b-scan(s) from {start} hold values {lo:g}..{hi:g}, outside the levels {levels}: "
                         "pass the levels of the volume they belong to (Denoiser.volume_levels)")


def _refuse_integer_markers(sample: np.ndarray, lo: float, hi: float, dtype: np.dtype) -> None:
    """Refuse an integer volume whose mapping a few markers (65535 above 12-bit data, -32768 below
    positive data) would set (:func:`marker_rows`): the rest would reach the model nearly black."""
    bounds = torch.tensor([lo], dtype=torch.float64), torch.tensor([hi], dtype=torch.float64)
    bad, a, b = marker_rows(torch.from_numpy(sample)[None], *bounds)
    bulk = round(a[0].item()), round(b[0].item())
    if bool(bad[0]) and integer_range(*bulk, dtype) != integer_range(lo, hi, dtype):  # else the same mapping
        raise InputError(f"values span {lo:.6g} to {hi:.6g} but nearly all lie in [{bulk[0]}, {bulk[1]}]: "
                         "a few extreme values (no-data markers?) would set the range the "
                         "model sees and flatten the rest to a few grey levels; clip them, or store the image as float "
                         "with NaN where values are missing (NaN is kept)")


def like_input(out: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """A float (B, H, W) output mapped back to its raw (B, H, W) input's range, in the raw's dtype.

    Integers are rounded and clipped to the dtype's range; in a float output the input's non-finite
    pixels are restored (NaN stays NaN, inf stays inf); a b-scan of one value (:func:`flat_bscans`)
    comes back as it was. ``out`` may be rounded in place.
    """
    dtype = raw.dtype
    integer = dtype.kind in "iu"
    if integer:
        np.clip(np.rint(out, out=out), *_integer_bounds(dtype, out.dtype), out=out)
    out = out.astype(dtype)
    bad = None if integer else ~np.isfinite(raw)
    if bad is not None and bad.any():
        out[bad] = raw[bad]
    flat = flat_bscans(raw)
    if flat.any():  # nothing to denoise there, and the generator would paint structure into it
        out[flat] = raw[flat]
    return out


def flat_bscans(raw: np.ndarray) -> np.ndarray:
    """Which b-scans of a (B, H, W) batch hold one value only (blank, constant), NaN and inf aside."""
    flat_raw = raw.reshape(raw.shape[0], -1)
    if raw.dtype.kind != "f":
        return np.asarray(flat_raw.min(axis=1) == flat_raw.max(axis=1))
    finite = np.isfinite(flat_raw)
    lo = np.min(flat_raw, axis=1, where=finite, initial=np.inf)
    hi = np.max(flat_raw, axis=1, where=finite, initial=-np.inf)
    return np.asarray(hi <= lo)


def _integer_bounds(dtype: np.dtype, float_dtype: np.dtype) -> tuple[Any, Any]:
    """The integer ``dtype``'s range as ``float_dtype`` values that convert back without overflow.

    (2**63 - 1 rounds up to 2**63 in float64, which would wrap to -2**63 in int64.)
    """
    info, to_float = np.iinfo(dtype), np.dtype(float_dtype).type
    lo, hi = to_float(info.min), to_float(info.max)
    if int(hi) > info.max:
        hi = np.nextafter(hi, to_float(0))
    return lo, hi
