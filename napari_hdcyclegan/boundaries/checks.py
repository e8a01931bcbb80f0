"""Plausibility of detected lines: thickness range, jumps between A-scans, edge contrast.

Doubtful A-scans keep their rows (a missing line is worse than a flagged one); the result carries
a boolean ``doubtful`` (N, W) array and :func:`summary` says in words how many there are.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Thickness (RPE - ILM) outside this range, as fractions of the b-scan height, is doubtful.
THICKNESS_RANGE: tuple[float, float] = (0.04, 0.45)
#: A jump of more than this fraction of the height between neighbouring A-scans is doubtful.
MAX_JUMP: float = 0.02
#: An edge weaker than this fraction of the line's median edge strength is doubtful.
MIN_CONTRAST: float = 0.25


def edge_strength(grad: np.ndarray, line: np.ndarray, sign: float) -> np.ndarray:
    """``sign`` x ``grad`` (axial derivative) at each row of ``line`` (NaN where NaN)."""
    h, w = grad.shape
    ok = np.isfinite(line)
    rows = np.clip(np.rint(np.nan_to_num(line) - 0.5).astype(int), 0, h - 1)
    return np.where(ok, sign * grad[rows, np.arange(w)], np.nan)


def doubtful_ascans(grad: np.ndarray, ilm: np.ndarray, rpe: np.ndarray) -> np.ndarray:
    """Boolean (W,): A-scans whose thickness, jumps or edge contrast (on ``grad``, the axial
    derivative of the smoothed b-scan) are implausible."""
    h = grad.shape[0]
    thick = rpe - ilm
    bad = np.zeros(ilm.shape, bool)
    with np.errstate(invalid="ignore"):
        bad |= (thick < THICKNESS_RANGE[0] * h) | (thick > THICKNESS_RANGE[1] * h)
        for line, sign in ((ilm, 1.0), (rpe, -1.0)):
            jump = np.abs(np.diff(line)) > MAX_JUMP * h
            bad[1:] |= jump
            bad[:-1] |= jump
            strength = edge_strength(grad, line, sign)
            if np.isfinite(strength).any():
                bad |= strength < MIN_CONTRAST * np.nanmedian(strength)
    return bad & np.isfinite(ilm) & np.isfinite(rpe)


def summary(lines: Mapping[str, np.ndarray]) -> str:
    """One sentence for the user: coverage of both lines and how many A-scans are doubtful."""
    ilm = np.asarray(lines["ILM"], float)
    both = np.isfinite(ilm) & np.isfinite(np.asarray(lines["RPE"], float))
    doubt = np.asarray(lines.get("doubtful", np.zeros(ilm.shape, bool)), bool)
    text = f"both lines on {both.mean():.0%} of A-scans"
    if doubt.any():
        text += f"; {int(doubt.sum())} A-scans doubtful (thickness, jump or weak edge)"
    return text


def mean_difference(found: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """Mean |found - other| (px) over A-scans where both are finite, and how many there are."""
    a = np.asarray(found, float)
    b = np.asarray(other, float)
    if a.shape != b.shape:
        return float("nan"), 0
    both = np.isfinite(a) & np.isfinite(b)
    return (float(np.mean(np.abs(a[both] - b[both]))) if both.any() else float("nan")), int(both.sum())
