"""A job's inputs: 2D b-scans and 3D volumes checked per domain and written into the run folder as TIFF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .spec import RUN_FILES, JobError, JobSpec


def bscans(images: list[np.ndarray]) -> list[np.ndarray]:
    """2D b-scans of a list of 2D b-scans and 3D volumes (b-scans on axis 0)."""
    out: list[np.ndarray] = []
    for im in images:
        arr = np.asarray(im)
        if arr.ndim == 2:
            out.append(arr)
        elif arr.ndim == 3:
            out.extend(arr)
        else:
            raise JobError(f"expected 2D b-scans or 3D volumes, got shape {arr.shape}")
    return out


def read_folder_images(folder: str | os.PathLike) -> list[np.ndarray]:
    """Every readable OCT file of ``folder`` (TIFF/PNG/JPEG and vendor files) as arrays."""
    from napari_hdcyclegan.io import is_supported, read_oct

    path = Path(folder)
    if not path.is_dir():
        raise JobError(f"{path}: not a folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and is_supported(f))
    try:
        return [read_oct(f).data for f in files]
    except ValueError as exc:  # OctReadError
        raise JobError(str(exc)) from exc


def check_domain(images: list[np.ndarray], what: str, crop: int) -> None:
    """One numeric dtype, one shape, at least one b-scan at least ``crop`` pixels each way."""
    if not images:
        raise JobError(f"no {what} data: choose an image layer or a folder of {what} b-scans")
    dtypes = {im.dtype for im in images}
    if len(dtypes) > 1:
        raise JobError(f"{what} images have mixed dtypes {sorted(map(str, dtypes))}")
    dtype = images[0].dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise JobError(f"{what} data has dtype {dtype}; expected a numeric gray image")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise JobError(f"{what} b-scans have mixed shapes {sorted(shapes)}; use one size per domain")
    h, w = images[0].shape
    if min(h, w) < crop:
        raise JobError(f"{what} b-scans are {h}x{w}, smaller than the crop {crop}: lower the crop")


def check_domains(hn: list[np.ndarray], ln: list[np.ndarray], crop: int) -> None:
    """Both domains usable and of the same dtype (the model maps intensities by dtype)."""
    check_domain(hn, "HN (high-noise)", crop)
    check_domain(ln, "LN (low-noise)", crop)
    if hn[0].dtype != ln[0].dtype:
        raise JobError(f"HN data is {hn[0].dtype} but LN data is {ln[0].dtype}: both domains must share "
                       "one dtype (the same scanner export), convert one of them")


def prepare_data(spec: JobSpec, hn: list[np.ndarray], ln: list[np.ndarray]) -> tuple[int, int]:
    """Check the domains and write them as TIFF stacks into the run folder; returns the counts.

    A folder that already holds a run is refused before anything in it changes (JobError).
    """
    import tifffile

    held = [n for n in RUN_FILES if (Path(spec.out) / n).exists()]
    if held:
        raise JobError(f"{spec.out} already holds a run ({', '.join(held)}); choose another name or --out")
    hn, ln = bscans(hn), bscans(ln)
    check_domains(hn, ln, spec.crop)
    for folder, images in ((spec.hn_dir(), hn), (spec.ln_dir(), ln)):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.tif"):
            old.unlink()
        tifffile.imwrite(folder / "bscans.tif", np.stack(images), photometric="minisblack")
    return len(hn), len(ln)

