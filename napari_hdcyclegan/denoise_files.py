"""Denoise files and folders into files: outputs checked before any compute, streamed, atomic.

The CLI's ``denoise IN OUT`` in functions (napari-free): :func:`plan_jobs` turns IN/OUT into
``(input, output)`` pairs and refuses what cannot work before a model is loaded (unknown or lossy
output type, missing or unwritable folder, OUT that is IN, a hard link or symlink to it, two inputs
with one output name); :func:`denoise_file` reads one input, checks that its output can hold the
result (format, dtype, free space), and streams the
denoised b-scans batch by batch into a temporary file in the output folder that replaces OUT only
when complete (:func:`napari_hdcyclegan.io.atomic_output`). Peak memory does not grow with the
volume's length: input pages are read (or memory-mapped and released) one batch at a time and output
pages written as they come.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, OutputError, OutputWriteError
from .io.atomic import check_writable, free_bytes
from .io.formats import IMAGE_SUFFIXES, PLAIN_SUFFIXES

#: Lossy formats a denoised image is never re-encoded in: JPEG inputs are written as PNG.
LOSSY_SUFFIXES = (".jpg", ".jpeg")
#: Formats a denoised image is written in (the same as the input's where it is one of them).
OUTPUT_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s not in LOSSY_SUFFIXES)

Job = tuple[Path, Path]
#: How many skipped (non-image) files of a folder run the warning names.
SKIPPED_SHOWN = 3


def same_file(a: Path, b: Path) -> bool:
    """Whether two existing paths are one file (same inode: hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def output_name(src: Path) -> str:
    """Same name for TIFF/PNG inputs; JPEG files become ``<stem>.png``, vendor files ``<stem>.tif``."""
    suffix = src.suffix.lower()
    if suffix in OUTPUT_SUFFIXES:
        return src.name
    return src.stem + (".png" if suffix in LOSSY_SUFFIXES else ".tif")


def check_output_path(dst: Path) -> None:
    """Refuse an output type or folder that cannot work, before anything is read or computed."""
    suffix = dst.suffix.lower()
    if suffix in LOSSY_SUFFIXES:
        raise OutputError(f"{dst}: JPEG output is refused (lossy: it would alter the denoised values); "
                          "use .png or .tif")
    if suffix not in OUTPUT_SUFFIXES:
        raise OutputError(f"{dst}: unsupported output type {suffix or '(no suffix)'!r}; "
                          "use .tif, .tiff or .png")
    if not dst.parent.is_dir():
        raise OutputError(f"{dst.parent}: output folder does not exist")
    if dst.is_dir():
        raise OutputError(f"{dst}: is a folder")


def check_output_fits(dst: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, before the compute, a PNG output for a volume or a dtype it cannot store, and a TIFF
    larger than the free space of its folder."""
    suffix = dst.suffix.lower()
    if suffix not in PLAIN_SUFFIXES:
        _check_space(dst, int(np.prod(shape)) * dtype.itemsize)
        return
    if len(shape) == 3 and shape[0] != 1:
        raise OutputError(f"{dst}: a {len(shape)}D volume cannot be written as {suffix} (it has {shape[0]} "
                          "b-scans); use .tif")
    if dtype not in (np.uint8, np.uint16):
        raise OutputError(f"{dst}: {suffix} cannot store dtype {dtype}; use .tif")


def _check_space(dst: Path, nbytes: int) -> None:
    """Refuse an uncompressed output the folder's free space cannot hold (the old file stays until
    the new one is complete, so it does not count as free)."""
    free = free_bytes(dst.parent)
    if free < nbytes:
        raise OutputWriteError(f"{dst}: {os.strerror(errno.ENOSPC)} (the output needs {_size(nbytes)}, "
                               f"{_size(free)} free)")


def _size(nbytes: int) -> str:
    """A byte count for people: kB, MB or GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes / 1e3:.1f} kB"


def warn_plain_output(dst: Path, image: Any) -> None:
    """Warn, before the compute, that a PNG output drops what the input carries beside pixels."""
    suffix = dst.suffix.lower()
    if suffix not in PLAIN_SUFFIXES:
        return
    from .io.tiff_block import kept_fields

    lost = []
    if any(u != "pixel" for u in image.units):
        lost.append("the µm scale")
    if getattr(image, "translate", None):
        lost.append("the position (translate)")
    if image.boundaries:
        lost.append(f"the layer segmentations ({', '.join(image.boundaries)})")
    lost += [f"{k}: {v}" for k, v in kept_fields(image.metadata).items()]
    if lost:
        warnings.warn(f"{dst}: {suffix} keeps pixels only; {', '.join(lost)} and the model record are not "
                      "saved (write .tif to keep them)", UserWarning, stacklevel=3)


def plan_jobs(src: Path, dst: Path) -> list[Job]:
    """The ``(input, output)`` pairs of ``denoise IN OUT``, every output path checked."""
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    jobs = _folder_jobs(src, dst) if src.is_dir() else [_file_job(src, dst)]
    for f, out in jobs:
        if out.exists() and same_file(f, out):
            raise OutputError(f"{out}: OUT is the input file {f} (same file or a link to it); "
                              "choose another output")
    return jobs


def _file_job(src: Path, dst: Path) -> Job:
    """IN is a file: OUT is a file, or a folder that receives the same-named file."""
    if dst.is_dir():
        name = output_name(src)
        if name != src.name and (dst / name).exists() and same_file(dst, src.parent):
            # a converted input written beside itself: that name is another file of its folder (as in a
            # folder run, where it would be another input's output), not a previous output to replace
            renamed = src.name + Path(name).suffix
            warnings.warn(f"{src.name} is written as {renamed} ({name} is there already: a converted file "
                          "written beside its input never replaces a file of that folder)", UserWarning, stacklevel=4)
            name = renamed
        dst = dst / name
    check_output_path(dst)
    check_writable(dst.parent, dst)
    return src, dst


def _folder_jobs(src: Path, dst: Path) -> list[Job]:
    """IN is a folder: OUT is a folder (created) of same-named files, none written twice."""
    from .io import folder_files

    if dst.exists() and not dst.is_dir():
        raise OutputError(f"{dst}: IN is a folder, so OUT must be a folder (it is a file)")
    if dst.exists() and same_file(src, dst):
        raise OutputError(f"{dst}: OUT must differ from IN (the inputs would be overwritten)")
    files = folder_files(src)
    _warn_skipped(src, files, dst)
    if not files:
        subfolders = _subfolders(src, dst)
        inside = f" (subfolders are not searched: {_shown(subfolders)})" if subfolders else ""
        raise OutputError(f"{src}: no TIFF, PNG, JPEG or vendor OCT files in this folder{inside}")
    names = _unique_names(files)
    make_output_folder(dst)
    jobs = [(f, dst / names[f]) for f in files]
    for _, out in jobs:
        check_output_path(out)
    return jobs


def _warn_skipped(src: Path, files: list[Path], dst: Path) -> None:
    """One warning naming how many visible files of ``src`` are not images it denoises, and the first few."""
    from .io import visible_files

    kept = set(files)
    skipped = [f.name for f in visible_files(src) if f not in kept]
    if skipped:
        warnings.warn(f"{src}: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} that "
                      f"{'are' if len(skipped) > 1 else 'is'} not an OCT image: {_shown(skipped)}", UserWarning,
                      stacklevel=4)
    subfolders = _subfolders(src, dst) if files else []  # without files, the "no files" error names them
    if subfolders:
        warnings.warn(f"{src}: skipped {len(subfolders)} subfolder{'s' if len(subfolders) > 1 else ''} "
                      f"(not searched): {_shown(subfolders)}", UserWarning, stacklevel=4)


def _subfolders(src: Path, dst: Path) -> list[str]:
    """The names of a folder's visible subfolders, sorted, the output folder ``dst`` left out."""
    return sorted(d.name for d in src.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and not (dst.exists() and same_file(d, dst)))


def _shown(names: list[str]) -> str:
    """The first few of ``names``, comma-separated, "..." for the rest."""
    return ", ".join(names[:SKIPPED_SHOWN]) + (", ..." if len(names) > SKIPPED_SHOWN else "")


def missing_folders(dst: Path) -> list[Path]:
    """``dst`` and those of its parents that do not exist yet, deepest first: what creating it makes."""
    missing = []
    for folder in (dst, *dst.absolute().parents):
        if folder.exists():
            break
        if folder.name not in ("", ".", ".."):  # "new/../out" creates "new" too; "new/.." is not a folder of its own
            missing.append(folder)
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove these folders, deepest first, where they are empty (a folder holding anything stays)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def make_output_folder(dst: Path) -> None:
    """Create the output folder ``dst`` (and its parents) or say, naming it, why it cannot be."""
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"{dst}: cannot create the output folder ({exc.strerror or exc})") from exc
    check_writable(dst, dst)


def _unique_names(files: list[Path]) -> dict[Path, str]:
    """Output names; a converted file (vendor, JPEG) whose ``<stem>.tif`` / ``<stem>.png`` another
    input also gets is written as ``<name>.tif`` / ``<name>.png``."""
    names = {f: output_name(f) for f in files}
    taken = Counter(n.lower() for n in names.values())
    for f in files:
        if taken[names[f].lower()] > 1 and f.suffix.lower() not in OUTPUT_SUFFIXES:
            renamed = f.name + Path(names[f]).suffix
            warnings.warn(f"{f.name} is written as {renamed} ({names[f]} is another input's output)",
                          UserWarning, stacklevel=3)
            names[f] = renamed
    clash = [n for n, k in Counter(n.lower() for n in names.values()).items() if k > 1]
    if clash:
        both = [f.name for f in files if names[f].lower() == clash[0]]
        raise OutputError(f"{' and '.join(both)} would both be written as {clash[0]}; rename one of them")
    return names


def read_input(path: Path) -> Any:
    """An :class:`napari_hdcyclegan.io.OctImage` (memory-mapped where the TIFF allows)."""
    from .io import read_oct

    return read_oct(path)


def denoise_file(src: Path, dst: Path, denoiser: Any, progress: Callable[[int, int], None] | None = None,
                 adapt_steps: int | None = None, note: Callable[[str], None] | None = None) -> Any:
    """Read ``src``, check that ``dst`` can hold the result, denoise batch by batch into ``dst``;
    returns the Denoiser that ran.

    ``denoiser`` is a Denoiser, or a function of the input data returning ``(denoiser, choice)``
    (``--weights auto``: :func:`napari_hdcyclegan.engine.choose_denoiser`), the choice being
    recorded in this file's provenance. ``adapt_steps``: fine-tune it on this input first
    (:func:`napari_hdcyclegan.adapt.iter_adapt`), ``note`` receiving the one-line outcome, which the
    provenance records too.
    """
    image = read_input(src)
    data = image.data
    shape, dtype = tuple(int(n) for n in data.shape), np.dtype(data.dtype)
    check_output_fits(dst, shape, dtype)
    warn_plain_output(dst, image)
    auto = not hasattr(denoiser, "iter_denoise")  # a chooser, which picks the model for this input
    _note_empty(src, data, refuse_outliers=auto)
    _note_linear(src, data)
    choice = None
    if auto:
        denoiser, choice = denoiser(data)
    adaptation = None
    if adapt_steps:
        from .adapt import iter_adapt
        from .progress import drive

        base = denoiser.name
        if note is not None:
            note(f"{src.name}: adapting {base} to this input ({adapt_steps} steps) ...")
        denoiser, adaptation = drive(iter_adapt(denoiser, data, adapt_steps))
        if note is not None:
            note(f"{src.name}: {adaptation.describe(base)}")
    provenance = denoiser.provenance(choice, data)
    if adaptation is not None:
        provenance["adaptation"] = adaptation.to_json()
    _note_dim(src, denoiser.name, provenance.get("dim_gains"))
    pages = _denoised_pages(denoiser, data, progress)
    write_output(dst, pages, shape, dtype, image, provenance)
    return denoiser


def _note_empty(src: Path, data: Any, refuse_outliers: bool = False) -> None:
    """Say which b-scans hold no finite pixel: nothing in them is denoised, they are written back as read.
    ``refuse_outliers`` (``auto``): refuse a no-data marker in any b-scan in the same pass, before a model
    is chosen and named."""
    from .normalise import empty_bscans

    empty = empty_bscans(data, refuse_outliers)
    if empty:
        total = 1 if data.ndim == 2 else data.shape[0]
        warnings.warn(f"{src}: {len(empty)} of {total} b-scans have no finite pixel (all NaN or inf; first: "
                      f"b-scan {empty[0]}); they are written back as they are, not denoised", UserWarning,
                      stacklevel=2)


def _note_linear(src: Path, data: Any) -> None:
    """Say when the input looks like linear intensities: it is denoised as it is, which does little."""
    from .intensity import linear_warning, looks_linear

    level = looks_linear(data)
    if level is not None:
        warnings.warn(linear_warning(str(src), level), UserWarning, stacklevel=2)


def _note_dim(src: Path, model: str, gains: list[float] | None) -> None:
    """Say when b-scans dimmer than the model's training scans were lifted (adjustments.dim_gain)."""
    lifted = [g for g in gains or [] if g > 1.0]
    if lifted:
        warnings.warn(f"{src}: {len(lifted)} of {len(gains or [])} b-scans are dimmer than {model}'s training "
                      f"scans and were lifted to their level for the model (gain up to {max(lifted):.2f}; "
                      "output in the input's levels; recorded as dim_gains in the provenance)", UserWarning,
                      stacklevel=2)


def _denoised_pages(denoiser: Any, data: Any, progress: Callable[[int, int], None] | None
                    ) -> Iterator[np.ndarray]:
    """Denoised batches in order, reporting ``progress(done, total)`` after each."""
    total = data.shape[0] if data.ndim == 3 else 1
    if progress:
        progress(0, total)
    for _, stop, chunk in denoiser.iter_denoise(data):
        yield chunk
        if progress:
            progress(stop, total)


def _absolute(path: Any) -> str:
    """``path`` resolved: a record that still names the input when read from another folder ("" if none)."""
    return str(Path(path).resolve()) if path else ""


def write_output(dst: Path, pages: Iterator[np.ndarray], shape: tuple[int, ...], dtype: np.dtype,
                 image: Any, provenance: dict) -> None:
    """Write streamed pages atomically: TIFF (scale, metadata, boundary lines and dtype kept) or PNG
    (one b-scan, pixels only: :func:`warn_plain_output`)."""
    from .io import atomic_output, write_tiff_pages

    if dst.suffix.lower() in PLAIN_SUFFIXES:
        import imageio.v3 as iio

        plane = np.concatenate(list(pages)).reshape(shape[-2:]).astype(dtype.newbyteorder("="))
        with atomic_output(dst) as tmp:
            iio.imwrite(tmp, plane)
        return
    from .io.tiff_block import kept_fields

    # the pixels' intensity domain, laterality and scan pattern stay at the top level, as read_oct gives them
    metadata = {"provenance": provenance, **kept_fields(image.metadata),
                "source": {"path": _absolute(image.metadata.get("path")), "format": image.metadata.get("format")}}
    if image.metadata.get("notes"):
        metadata["source"]["notes"] = list(image.metadata["notes"])
    write_tiff_pages(dst, pages, shape, dtype, scale=tuple(image.scale), units=tuple(image.units),
                     axis_labels=tuple(image.axis_labels), metadata=metadata,
                     boundaries=dict(image.boundaries) or None, translate=getattr(image, "translate", None))
