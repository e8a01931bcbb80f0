"""Retinal thickness and the boundary CSV (``bscan,ascan,ILM,RPE,thickness_um``)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

BOUNDARY_NAMES: tuple[str, ...] = ("ILM", "RPE")
#: eyepy's layer colours (eyepy.config.layer_colors), as hex RGB.
BOUNDARY_COLORS: dict[str, str] = {"ILM": "#F668C2", "RPE": "#97A431"}
CSV_HEADER: tuple[str, ...] = ("bscan", "ascan", "ILM", "RPE", "thickness_um")


def thickness_um(ilm: np.ndarray, rpe: np.ndarray, axial_um_per_px: float | None) -> np.ndarray:
    """Retinal thickness (RPE - ILM) x axial spacing (µm; px when the spacing is None), NaN where
    either boundary is missing."""
    ilm = np.asarray(ilm, dtype=np.float64)
    rpe = np.asarray(rpe, dtype=np.float64)
    if ilm.shape != rpe.shape:
        raise ValueError(f"ILM shape {ilm.shape} does not match RPE shape {rpe.shape}")
    scale = 1.0 if axial_um_per_px is None else float(axial_um_per_px)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"axial_um_per_px must be a positive number, got {axial_um_per_px!r}")
    return ((rpe - ilm) * scale).astype(np.float32)


def _as_2d(boundaries: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """ILM and RPE as (N, W) float arrays, checked to match."""
    missing = [n for n in BOUNDARY_NAMES if n not in boundaries]
    if missing:
        raise ValueError(f"boundaries lack {missing}; expected keys {BOUNDARY_NAMES}")
    ilm = np.atleast_2d(np.asarray(boundaries["ILM"], dtype=np.float64))
    rpe = np.atleast_2d(np.asarray(boundaries["RPE"], dtype=np.float64))
    if ilm.shape != rpe.shape or ilm.ndim != 2:
        raise ValueError(f"ILM {ilm.shape} and RPE {rpe.shape} must both be (W,) or (N, W)")
    return ilm, rpe


def boundary_table(boundaries: Mapping[str, np.ndarray], axial_um_per_px: float | None
                   ) -> np.ndarray:
    """One row per A-scan of each b-scan: structured array with fields ``CSV_HEADER``
    (``thickness_um`` NaN throughout when ``axial_um_per_px`` is None)."""
    ilm, rpe = _as_2d(boundaries)
    n, w = ilm.shape
    table = np.zeros(n * w, dtype=[("bscan", "i4"), ("ascan", "i4"), ("ILM", "f8"), ("RPE", "f8"),
                                   ("thickness_um", "f8")])
    table["bscan"] = np.repeat(np.arange(n), w)
    table["ascan"] = np.tile(np.arange(w), n)
    table["ILM"] = ilm.ravel()
    table["RPE"] = rpe.ravel()
    # the column is in µm by name: unknown spacing gives an empty column, never pixels
    table["thickness_um"] = (np.nan if axial_um_per_px is None
                             else thickness_um(ilm, rpe, axial_um_per_px).ravel())
    return table


def _fmt(value: float) -> str:
    """CSV cell: empty for NaN, else up to 3 decimals."""
    return "" if not np.isfinite(value) else f"{value:.3f}".rstrip("0").rstrip(".")


def write_boundaries_csv(path: str | os.PathLike, boundaries: Mapping[str, np.ndarray],
                         axial_um_per_px: float | None) -> Path:
    """Write ``bscan,ascan,ILM,RPE,thickness_um`` (rows from the top, empty where missing).

    Without an axial spacing (None) the thickness column is left empty.
    """
    table = boundary_table(boundaries, axial_um_per_px)
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for row in table:
            writer.writerow([int(row["bscan"]), int(row["ascan"]), _fmt(row["ILM"]), _fmt(row["RPE"]),
                             _fmt(row["thickness_um"])])
    return path


def read_boundaries_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`write_boundaries_csv` back to ``{"ILM", "RPE", "thickness_um"}``
    arrays of shape (N, W)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise ValueError(f"{path}: not a boundaries CSV (header must be {','.join(CSV_HEADER)})")
    body = rows[1:]
    n = max((int(r[0]) for r in body), default=-1) + 1
    w = max((int(r[1]) for r in body), default=-1) + 1
    out = {k: np.full((n, w), np.nan) for k in CSV_HEADER[2:]}
    for r in body:
        for k, v in zip(CSV_HEADER[2:], r[2:]):
            out[k][int(r[0]), int(r[1])] = float(v) if v else np.nan
    return out
