"""Retinal thickness and the boundary CSV (``bscan,ascan,ILM,RPE,thickness_um``).

With the inner boundaries (:mod:`.layers`) the table and CSV have all eight boundaries
(``ILM,RNFL,IPL,INL,OPL,PR1,PR2,RPE``), ``thickness_um`` and one thickness column per layer
(``RNFL,GCL+IPL,INL,OPL,ONL+IS,OS,RPE`` + ``_um``, or + ``_px`` when the axial spacing is unknown).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..io.vendor import BOUNDARY_COLORS, DEFAULT_BOUNDARY_COLOR  # noqa: F401 - re-exported
from .layers import INNER_NAMES, LAYER_BOUNDARIES, LAYER_NAMES

BOUNDARY_NAMES: tuple[str, ...] = ("ILM", "RPE")
CSV_HEADER: tuple[str, ...] = ("bscan", "ascan", "ILM", "RPE", "thickness_um")
#: Last column of a CSV of b-scans read from one file each (a folder): the row's file name.
FILE_COLUMN = "file"


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


def layer_columns(axial_um_per_px: float | None) -> tuple[str, ...]:
    """Per-layer thickness columns: ``<layer>_um``, or ``<layer>_px`` without an axial spacing."""
    unit = "px" if axial_um_per_px is None else "um"
    return tuple(f"{name}_{unit}" for name in LAYER_NAMES)


def has_inner(boundaries: Mapping[str, np.ndarray]) -> bool:
    """Whether ``boundaries`` holds all six inner boundaries."""
    return all(name in boundaries for name in INNER_NAMES)


def csv_header(boundaries: Mapping[str, np.ndarray], axial_um_per_px: float | None) -> tuple[str, ...]:
    """:data:`CSV_HEADER`, or with the inner boundaries all eight lines, ``thickness_um`` and the
    per-layer thickness columns (:func:`layer_columns`)."""
    if not has_inner(boundaries):
        return CSV_HEADER
    return ("bscan", "ascan", *LAYER_BOUNDARIES, "thickness_um", *layer_columns(axial_um_per_px))


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
    """One row per A-scan of each b-scan: structured array with fields :func:`csv_header`
    (``thickness_um`` NaN throughout when ``axial_um_per_px`` is None; with the inner boundaries,
    per-layer thickness in µm, or in px without a spacing)."""
    ilm, rpe = _as_2d(boundaries)
    n, w = ilm.shape
    header = csv_header(boundaries, axial_um_per_px)
    table = np.zeros(n * w, dtype=[(k, "i4" if k in ("bscan", "ascan") else "f8") for k in header])
    table["bscan"] = np.repeat(np.arange(n), w)
    table["ascan"] = np.tile(np.arange(w), n)
    table["ILM"] = ilm.ravel()
    table["RPE"] = rpe.ravel()
    # the column is in µm by name: unknown spacing gives an empty column, never pixels
    table["thickness_um"] = (np.nan if axial_um_per_px is None
                             else thickness_um(ilm, rpe, axial_um_per_px).ravel())
    if has_inner(boundaries):
        lines = {"ILM": ilm, "RPE": rpe}
        for name in INNER_NAMES:
            lines[name] = np.atleast_2d(np.asarray(boundaries[name], dtype=np.float64))
            if lines[name].shape != ilm.shape:
                raise ValueError(f"{name} {lines[name].shape} does not match ILM {ilm.shape}")
            table[name] = lines[name].ravel()
        for col, upper, lower in zip(layer_columns(axial_um_per_px), LAYER_BOUNDARIES[:-1],
                                     LAYER_BOUNDARIES[1:]):
            table[col] = thickness_um(lines[upper], lines[lower], axial_um_per_px).ravel()
    return table


def _fmt(value: float) -> str:
    """CSV cell: empty for NaN, else up to 3 decimals."""
    return "" if not np.isfinite(value) else f"{value:.3f}".rstrip("0").rstrip(".")


def write_boundaries_csv(path: str | os.PathLike, boundaries: Mapping[str, np.ndarray],
                         axial_um_per_px: float | None, files: Sequence[str] | None = None) -> Path:
    """Write ``bscan,ascan,ILM,RPE,thickness_um`` (rows from the top, empty where missing), or with
    the inner boundaries the columns of :func:`csv_header`.

    Without an axial spacing (None) the thickness column is left empty (layer columns are in px).
    With ``files`` (a stack read from one file per b-scan), a last column ``file`` names each row's.
    """
    table = boundary_table(boundaries, axial_um_per_px)
    header = table.dtype.names or ()
    if files is not None and len(files) != len(np.unique(table["bscan"])):
        raise ValueError(f"{len(files)} file names for {len(np.unique(table['bscan']))} b-scans")
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow((*header, FILE_COLUMN) if files is not None else header)
        for row in table:
            b = int(row["bscan"])
            cells = [b, int(row["ascan"]), *(_fmt(row[k]) for k in header[2:])]
            writer.writerow([*cells, files[b]] if files is not None else cells)
    return path


def file_names(metadata: Mapping[str, object], n_bscans: int) -> list[str] | None:
    """The file name of each b-scan of a stack read from a folder (``metadata["files"]``, one per
    b-scan), for :func:`write_boundaries_csv`'s ``files``; None for anything else."""
    files = metadata.get("files")
    if isinstance(files, (list, tuple)) and len(files) == n_bscans and all(isinstance(f, str) for f in files):
        return list(files)
    return None


def read_boundaries_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`write_boundaries_csv` back to ``{"ILM", "RPE", "thickness_um"}``
    (and, in a CSV with inner boundaries, every further column) arrays of shape (N, W)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if rows and rows[0][-1:] == [FILE_COLUMN]:  # the file names of a folder's b-scans: not numbers
        rows = [r[:-1] for r in rows]
    known = [CSV_HEADER, *(csv_header(dict.fromkeys(INNER_NAMES, np.zeros(0)), s) for s in (None, 1.0))]
    if not rows or tuple(rows[0]) not in known:
        raise ValueError(f"{path}: not a boundaries CSV (header must be {','.join(CSV_HEADER)}, "
                         "or that of one with inner boundaries)")
    header = tuple(rows[0])
    body = rows[1:]
    n = max((int(r[0]) for r in body), default=-1) + 1
    w = max((int(r[1]) for r in body), default=-1) + 1
    out = {k: np.full((n, w), np.nan) for k in header[2:]}
    for r in body:
        for k, v in zip(header[2:], r[2:]):
            out[k][int(r[0]), int(r[1])] = float(v) if v else np.nan
    return out
