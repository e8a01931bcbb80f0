"""The automatic model choice: the shipped model that suits a scan, picked by its measured noise.

Neighbouring A-scans carry nearly independent speckle, so the PSNR between the even- and the
odd-column halves of a raw b-scan (mean difference removed) measures how noisy it is, on any
scanner, without a reference. The peak of that PSNR is the scan's own 0.5-99.5 percentile range,
not its dtype's: a dimmer export, a 12-bit scan in 16-bit words or an offset integer scan scores as
the same scan does at full range. Single-frame scans (Bioptigen/Duke frames and similar: 12.8-15.7 dB
on the shared data) need a model trained towards registered averages; averaged scans (Spectralis
`.vol` and Tian: 20-32 dB) one that keeps their fine structure. The threshold sits between the two
groups, nearer the single-frame side: sending an averaged scan to the single-frame model costs
3-11 dB of split PSNR on the shared scans, the other mistake 0.1-0.3 dB.

Above the threshold the noise's texture decides: Bioptigen frames, and the means of a few of them,
carry pixel-independent noise (lag-1 axial correlation of the column difference 0.08-0.19), every
Spectralis and other scan on the shared data axially correlated speckle (0.61-0.83). A 2- to
5-frame Bioptigen average measures 16-20 dB, like an averaged Spectralis scan, but the
Spectralis model leaves much of its white noise in (0.6 dB and 0.05 SSIM below BM3D at 2 frames with
the current weights); it goes to a model trained on such averages. Heavily averaged Bioptigen scans
(the Duke references: 25-27 dB) stay with the Spectralis model, which keeps their detail; the few-frame
model over-smooths them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import metrics

#: Pseudo weights name: choose per input with :func:`choose_model`.
AUTO = "auto"
#: Model for averaged, moderately noisy scans (Spectralis and alike).
AVERAGED_MODEL = "spectralis-real"
#: Model for single-frame, very noisy scans (Bioptigen and alike).
SINGLE_FRAME_MODEL = "bioptigen-duke"
#: Model for averages of a few frames with pixel-independent noise (Bioptigen and alike).
FEW_FRAME_MODEL = "bioptigen-averaged"
#: Model whose feature maps and denoised b-scan the boundary detection uses under "auto": its smoother
#: output keeps the optimal path off the vitreous noise (valid.vol ILM 12.5 px vs 183 px with
#: AVERAGED_MODEL, Tian ILM/BM 0.64/0.93 vs 0.63/0.93 px; scripts/measure_boundaries.py).
BOUNDARY_MODEL = "spectralis-sim"
#: Split PSNR (dB, on the scan's own range) below which a scan counts as single-frame noisy.
SINGLE_FRAME_BELOW_DB = 16.0
#: Axial noise correlation (:func:`metrics.axial_noise_correlation`) below which an averaged scan's
#: noise is pixel-independent (Bioptigen-like) and goes to :data:`FEW_FRAME_MODEL`.
UNCORRELATED_BELOW = 0.4
#: Split PSNR (dB) from which even pixel-independent noise is light enough for :data:`AVERAGED_MODEL`
#: (5-frame Bioptigen means: 18.5-19.7 dB; the Duke references 25.4-27.3 dB).
FEW_FRAME_BELOW_DB = 21.0
#: Percentiles of a b-scan whose difference is the peak of its split PSNR.
RANGE_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class ModelChoice:
    """The chosen model name and why, in words a user can check."""

    weights: str
    split_psnr_db: float
    reason: str
    axial_correlation: float = float("nan")


def split_psnr(bscan: np.ndarray) -> float:
    """PSNR (dB) between the even- and odd-column halves of a raw b-scan, its peak the b-scan's
    :data:`RANGE_PERCENTILES` range: unchanged by a gain or offset of the grey levels.

    Parameters
    ----------
    bscan : numpy.ndarray
        A raw 2D b-scan, any real dtype.

    Returns
    -------
    float
        dB; ``inf`` for a b-scan without contrast (constant, or no finite pixel). NaN/inf pixels (and
        their column partners) are left out: one of them would make the score NaN, and NaN counts as
        "not below the threshold".
    """
    b = np.asarray(bscan, dtype=np.float64)
    if b.ndim != 2:
        raise ValueError(f"expected a 2D b-scan, got shape {b.shape}")
    metrics.column_halves(b)  # refuses a b-scan too narrow to split, blank or not
    finite = b[np.isfinite(b)]
    if finite.size == 0:
        return float("inf")
    low, high = np.percentile(finite, RANGE_PERCENTILES)
    if not high > low:  # constant: a zero difference would read as a capped, meaningless 120 dB
        return float("inf")
    return metrics.split_psnr((b - low) / (high - low))


def choose_model(data: Any, n_bscans: int = 5) -> ModelChoice:
    """Pick a shipped model for a 2D b-scan or 3D volume by the median split PSNR and axial noise
    correlation of a few b-scans. B-scans without contrast (blank, constant, all NaN) are not scored;
    when none of the sampled ones has any, the volume's other b-scans are read in order until some
    have; when none has, :data:`AVERAGED_MODEL` is chosen with ``split_psnr_db`` NaN and a reason
    saying so.

    Parameters
    ----------
    data : array_like
        ``(H, W)`` or ``(N, H, W)``; only the b-scans scored are read.
    n_bscans : int
        How many evenly spaced b-scans of a volume are scored.

    Returns
    -------
    ModelChoice
    """
    shape = np.shape(data)
    if len(shape) not in (2, 3):
        raise ValueError(f"expected a 2D b-scan or 3D volume, got shape {shape}")
    picks: np.ndarray | None = None  # the scored b-scans' places in a volume
    if len(shape) == 2:
        bscans = [np.asarray(data)]
    else:
        picks = np.unique(np.linspace(0, shape[0] - 1, min(n_bscans, shape[0])).round().astype(int))
        bscans = [np.asarray(data[int(i)]) for i in picks]
    _refuse_flattening_outliers(bscans, picks)
    scores = [s for s in (split_psnr(b) for b in bscans) if np.isfinite(s)]
    if not scores and picks is not None:  # every sampled b-scan blank: the others may still tell
        bscans, scores = _other_bscans_with_contrast(data, picks, n_bscans)
    corr = [c for c in (metrics.axial_noise_correlation(b) for b in bscans) if np.isfinite(c)]
    ac = float(np.median(corr)) if corr else float("nan")  # a blank b-scan has no texture to measure
    if not scores:  # blank or all-NaN b-scans: an "inf dB" reading would be a number without a measurement
        return ModelChoice(AVERAGED_MODEL, float("nan"), f"no b-scan scored has contrast (blank, constant or no finite "
                           f"pixels), so the noise level cannot be measured: {AVERAGED_MODEL}, the default", ac)
    db = float(np.median(scores))
    if db < SINGLE_FRAME_BELOW_DB:
        return ModelChoice(SINGLE_FRAME_MODEL, db, f"split PSNR {db:.1f} dB < {SINGLE_FRAME_BELOW_DB:g} dB: "
                           "single-frame noise level", ac)
    if ac < UNCORRELATED_BELOW and db < FEW_FRAME_BELOW_DB:  # NaN (nothing measurable) is not below
        return ModelChoice(FEW_FRAME_MODEL, db, f"split PSNR {db:.1f} dB < {FEW_FRAME_BELOW_DB:g} dB and axial noise "
                           f"correlation {ac:.2f} < {UNCORRELATED_BELOW:g}: few-frame average, pixel-independent "
                           "(Bioptigen-like) noise", ac)
    return ModelChoice(AVERAGED_MODEL, db, f"split PSNR {db:.1f} dB >= {SINGLE_FRAME_BELOW_DB:g} dB, axial noise "
                       f"correlation {ac:.2f}: averaged-scan noise", ac)


def _other_bscans_with_contrast(data: Any, picks: np.ndarray, n: int) -> tuple[list[np.ndarray], list[float]]:
    """Up to ``n`` b-scans of a volume, other than ``picks``, that have contrast, and their split PSNR;
    read in order, one at a time."""
    from ..memory import drop_pages

    bscans, scores = [], []
    for i in (int(i) for i in np.setdiff1d(np.arange(np.shape(data)[0]), picks)):
        bscan = np.asarray(data[i])
        _refuse_flattening_outliers([bscan], np.array([i]))
        score = split_psnr(bscan)
        drop_pages(data, i, i + 1)
        if np.isfinite(score):
            bscans.append(bscan)
            scores.append(score)
            if len(scores) == n:
                break
    return bscans, scores


def _refuse_flattening_outliers(bscans: list[np.ndarray], picks: np.ndarray | None) -> None:
    """:func:`napari_hdcyclegan.normalise.refuse_flattening_outliers` for the b-scans to be scored, raised
    before a split PSNR becomes a meaningless score; ``picks`` are their places in a volume (None: one b-scan)."""
    from ..normalise import refuse_flattening_outliers

    for k, b in enumerate(bscans):
        refuse_flattening_outliers(b, None if picks is None else int(picks[k]))


def resolve_auto(weights: Any, data: Any = None) -> tuple[Any, ModelChoice | None]:
    """``(weights, None)``, or for :data:`AUTO` the model chosen for ``data`` and the choice
    (:data:`AVERAGED_MODEL` and None without ``data``).

    Parameters
    ----------
    weights : str or os.PathLike
        A model name or directory, or :data:`AUTO`.
    data : array_like, optional
        The scan the model is for.

    Returns
    -------
    tuple
        ``(weights, choice)``; ``choice`` is None unless a model was chosen for ``data``.
    """
    if str(weights) != AUTO:
        return weights, None
    if data is None:
        return AVERAGED_MODEL, None
    from ..normalise import check_input

    check_input(data)  # the denoiser's own one-line error, before measuring a scan too small to split
    choice = choose_model(data)
    return choice.weights, choice


def describe_auto() -> str:
    """One line on what :data:`AUTO` picks, for model listings."""
    return (f"picks per input: {SINGLE_FRAME_MODEL} below {SINGLE_FRAME_BELOW_DB:g} dB split PSNR "
            f"(single-frame noise), {FEW_FRAME_MODEL} up to {FEW_FRAME_BELOW_DB:g} dB for pixel-independent noise "
            f"(axial correlation < {UNCORRELATED_BELOW:g}), else {AVERAGED_MODEL}; boundaries use {BOUNDARY_MODEL}")


def boundary_weights(weights: str) -> str:
    """The weights the boundary detection uses: :data:`BOUNDARY_MODEL` for "auto", else ``weights``.

    Parameters
    ----------
    weights : str

    Returns
    -------
    str
    """
    return BOUNDARY_MODEL if str(weights) == AUTO else weights
