"""Command line: ``python -m napari_hdcyclegan {demo,denoise,boundaries} ...``.

User errors (missing or unreadable files, wrong dimensions, bad weights, an output that cannot
hold the result, out of memory) are :class:`napari_hdcyclegan.errors.HDCycleGANError` (or
MemoryError / OSError): they print one ``error: ...`` line and exit with status 2; any other
exception is a bug and keeps its traceback. SIGTERM is handled like Ctrl-C, so that no partial
output is left behind (exit status 143). Messages go through :func:`say`, so that they never land
on a progress bar's line. The argument parser is :mod:`.cli_args`.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .cli_args import adaptation_steps, build_parser
from .errors import HDCycleGANError, OutputError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
WIDGET = "Denoise OCT (HDcycleGAN)"


class UserError(HDCycleGANError):
    """A problem with the user's input: reported as one line, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup (temporary outputs) runs."""


#: What the CLI reports as one line and exit status 2 (anything else is a bug: traceback).
USER_ERRORS = (HDCycleGANError, MemoryError, OSError)


# ------------------------------------------------------------------------------------------------
# reading and writing


def read_input(path: Path) -> Any:
    """An :class:`napari_hdcyclegan.io.OctImage` (memory-mapped where the TIFF allows)."""
    from .io import read_oct

    return read_oct(path)


def say(message: str) -> None:
    """Print one line to stderr above any open progress bar (never appended to the bar's line)."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


@contextmanager
def progress_bar(desc: str, quiet: bool, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar, closed on exit, as the ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, total=total, unit="b-scan", disable=quiet, leave=True, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()


# ------------------------------------------------------------------------------------------------
# denoise


def cmd_denoise(args: argparse.Namespace) -> int:
    """``denoise IN OUT``: a file to a file, or a folder to a folder of same-named files."""
    from .denoise_files import denoise_file, missing_folders, plan_jobs, remove_empty_folders

    src, dst = Path(args.input), Path(args.output)
    made = missing_folders(dst) if src.is_dir() else []  # what this run creates, removed if nothing lands there
    try:
        jobs = plan_jobs(src, dst)  # every output checked before the model is loaded
        denoiser = _chooser(args)
    except BaseException:
        remove_empty_folders(made)
        raise
    used: Counter[str] = Counter()
    for f, out in jobs:
        run = _chooser(args, f.name) if src.is_dir() and not hasattr(denoiser, "iter_denoise") else denoiser
        try:
            with progress_bar(f.name, args.quiet) as progress:
                used[denoise_file(f, out, run, progress, adaptation_steps(args), say).name] += 1
        except USER_ERRORS as exc:
            gc.collect()  # after an out-of-memory error, the next file starts clean
            say(f"error: {_message(exc, f)}")
    where = dst if src.is_dir() else jobs[0][1]
    failed = len(jobs) - sum(used.values())
    if failed:
        if src.is_dir():
            done = f"{len(jobs) - failed} written to {where}" if failed < len(jobs) else "none written"
            if failed == len(jobs):
                remove_empty_folders(made)
            say(f"error: {failed} of {len(jobs)} files failed; {done}")
        return EXIT_USER_ERROR
    if not args.quiet:
        print(f"wrote {len(jobs)} file(s) to {where} with {_models_used(used)}")
    return 0


def _models_used(used: Counter[str]) -> str:
    """The model that denoised every file, or each model chosen and for how many files."""
    if len(used) == 1:
        return next(iter(used))
    return "the model chosen per file: " + ", ".join(f"{name} ({n} file{'s' if n > 1 else ''})"
                                                       for name, n in sorted(used.items()))


def _chosen(args: argparse.Namespace, data: Any = None, label: str | None = None) -> tuple[Any, Any]:
    """The resident denoiser for ``--weights`` / ``--device`` / ``--batch-size`` (and ``data``), and
    why ``auto`` chose it (None otherwise), which is printed (after ``label``, a folder run's file)."""
    from .engine import DEFAULT_MODEL, UNTRAINED_NAME, choose_denoiser

    denoiser, choice = choose_denoiser(args.weights or DEFAULT_MODEL, args.device, data=data)
    if getattr(args, "batch_size", None):
        denoiser.batch_size = args.batch_size
    if getattr(args, "precision", None):
        denoiser.precision = args.precision
    denoiser = denoiser.with_lateral_sigma(getattr(args, "lateral_sigma", None))
    if choice is not None:
        say(f"{label + ': ' if label else ''}model: {denoiser.name} (auto: {choice.reason}; --weights overrides)")
    if not denoiser.trained and denoiser.name != UNTRAINED_NAME:  # the fallback already warns
        say(f"warning: {denoiser.name} is marked untrained in its config (\"trained\": false): "
            "its output is not a meaningful denoising")
    return denoiser, choice


def _denoiser(args: argparse.Namespace, data: Any = None) -> Any:
    """:func:`_chosen` without the choice."""
    return _chosen(args, data)[0]


def _chooser(args: argparse.Namespace, label: str | None = None) -> Any:
    """A denoiser, or for ``--weights auto`` (the default) a function of the input returning
    ``(denoiser, choice)`` that names ``label`` (a folder run's file) in its `model:` line."""
    from .engine import DEFAULT_MODEL
    from .model.choice import AUTO

    if str(args.weights or DEFAULT_MODEL) != AUTO:
        return _denoiser(args)
    return lambda data: _chosen(args, data, label)


# ------------------------------------------------------------------------------------------------
# boundaries


def cmd_boundaries(args: argparse.Namespace) -> int:
    """``boundaries IN OUT.csv``: ILM/RPE per A-scan from the model's feature maps."""
    from . import boundaries as bnd
    from .io import um_per_pixel
    from .io.atomic import check_writable
    from .normalise import check_input

    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    if dst.suffix.lower() != ".csv":
        raise UserError(f"{dst}: the output must be a .csv file")
    if not dst.parent.is_dir():
        raise UserError(f"{dst.parent}: output folder does not exist")
    check_writable(dst.parent, dst)
    image = read_input(src)
    try:  # a scan the model cannot take is refused before the model loads, naming the file
        check_input(image.data)
    except HDCycleGANError as exc:
        raise UserError(f"{src}: {exc}") from None
    axial = args.axial_um
    if axial is None:
        axial = um_per_pixel(getattr(image, "scale", None), getattr(image, "units", None), -2)
    denoiser = _boundary_denoiser(args, image.data)
    n = image.data.shape[0] if image.data.ndim == 3 else 1
    with progress_bar(f"{src.name} boundaries", args.quiet, n) as progress:
        lines = bnd.model_boundaries(np.asarray(image.data), denoiser, progress=progress)
    from .io import atomic_output

    if axial is None:
        warnings.warn(f"{src} has no axial pixel size in µm: thickness_um left empty (pass --axial-um)",
                      stacklevel=2)
    with atomic_output(dst) as tmp:
        bnd.write_boundaries_csv(tmp, lines, axial, bnd.file_names(image.metadata, n))
    if not args.quiet:
        print(f"wrote {dst} with {denoiser.name}: {bnd.summary(lines)}")
    return 0


def _boundary_denoiser(args: argparse.Namespace, data: Any) -> Any:
    """The denoiser whose feature maps find the boundaries; under ``auto`` the boundary model,
    which is said (the CSV has no place for it: its first line is the column header)."""
    from .engine import DEFAULT_MODEL
    from .model.choice import AUTO, boundary_weights

    auto = str(args.weights or DEFAULT_MODEL) == AUTO
    args.weights = boundary_weights(args.weights or DEFAULT_MODEL)
    denoiser = _denoiser(args, data)
    if auto:
        say(f"model: {denoiser.name} (auto: the boundary model, whose smoother output keeps the paths off "
            "the vitreous noise; --weights overrides)")
    return denoiser


# ------------------------------------------------------------------------------------------------
# demo


def _has_display() -> bool:
    """Whether a GUI can open (X11/Wayland on Linux; always on macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _baseline_panels(bscan: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Wavelet (always) and BM3D (when the extra is installed) on one b-scan."""
    from .baselines import BASELINES, MissingExtraError

    panels = [("wavelet", BASELINES["wavelet"](bscan))]
    try:
        panels.append(("BM3D", BASELINES["bm3d"](bscan)))
    except MissingExtraError:
        say("note: BM3D panel skipped (pip install 'napari-hdcyclegan[bm3d]')")
    return panels


def side_by_side_png(path: Path, panels: Sequence[tuple[str, np.ndarray]], title: str) -> None:
    """Save b-scans side by side with shared contrast (matplotlib, Agg: no display needed)."""
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, never needs a display

    n = len(panels)
    h, w = panels[0][1].shape
    fig = Figure(figsize=(3.2 * n, 3.2 * h / w + 0.6), dpi=150, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    lo, hi = np.nanpercentile(panels[0][1], [0.5, 99.5])
    for ax, (name, img) in zip(axes, panels):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)


def cmd_demo(args: argparse.Namespace) -> int:
    """Denoise the bundled simulated volume; write TIFFs and a side-by-side PNG; open napari."""
    from ._sample_data import BSCAN_SPACING_UM
    from .denoise_files import make_output_folder
    from .simulate import SPECTRALIS_UM_PER_PX, load_sample_volume

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out must be a folder (this is a file)")
    make_output_folder(out_dir)
    vol = load_sample_volume()
    denoiser, choice = _chosen(args, vol.hn)
    with progress_bar("sample volume", args.quiet, vol.hn.shape[0]) as progress:
        denoised = denoiser.denoise(vol.hn, progress=progress)
    from .io import write_tiff

    scale = (BSCAN_SPACING_UM, SPECTRALIS_UM_PER_PX["axial"], SPECTRALIS_UM_PER_PX["lateral"])
    write_tiff(out_dir / "sample_raw.tif", vol.hn, scale=scale, metadata={"source": "simulated HN, 12 frames"})
    write_tiff(out_dir / "sample_denoised.tif", denoised, scale=scale,
               metadata={"provenance": denoiser.provenance(choice)})
    mid = vol.hn.shape[0] // 2
    label = denoiser.name if denoiser.trained else f"{denoiser.name}: NOT a denoiser yet"
    panels = [("raw (12-frame HN)", vol.hn[mid]), (f"HDcycleGAN\n{label}", denoised[mid])]
    panels += _baseline_panels(vol.hn[mid])
    panels.append(("clean (simulated truth)", vol.clean[mid]))
    png = out_dir / "sample_side_by_side.png"
    side_by_side_png(png, panels, f"simulated Spectralis b-scan {mid} of {vol.hn.shape[0]}")
    if not args.quiet:
        print(f"wrote {out_dir / 'sample_denoised.tif'}, {out_dir / 'sample_raw.tif'} and {png} with {denoiser.name}")
    if args.no_viewer or not _has_display():
        return 0
    return _open_viewer(vol.hn, denoised, scale)


def _open_viewer(raw: np.ndarray, denoised: np.ndarray, scale: tuple[float, ...]) -> int:
    """Show raw and denoised volumes in napari with the plugin's denoise widget docked."""
    try:
        import napari
    except ImportError as exc:
        print(f"note: napari viewer not opened ({exc}); pip install 'napari-hdcyclegan[qt]'", file=sys.stderr)
        return 0
    common = {"scale": scale, "units": ("um",) * 3, "axis_labels": ("b-scan", "depth", "lateral")}
    viewer = napari.Viewer(title="napari-hdcyclegan demo")
    viewer.add_image(raw, name="simulated_HN", **common)
    viewer.add_image(denoised, name="simulated_HN_denoised", **common)
    viewer.window.add_plugin_dock_widget("napari-hdcyclegan", WIDGET)
    napari.run()
    return 0


# ------------------------------------------------------------------------------------------------
# entry point


def cmd_models(args: argparse.Namespace) -> int:
    """Print ``auto`` (the default) and what it picks, then the shipped and user models: name,
    origin, trained, folder."""
    from .model.choice import AUTO, describe_auto
    from .model.registry import list_models, user_models_dir

    print(f"{AUTO}\tdefault\t{describe_auto()}")  # engine.DEFAULT_MODEL
    for e in list_models():
        print(f"{e.name}\t{e.origin}\t{'trained' if e.trained else 'UNTRAINED'}\t{e.path}")
    print(f"user models directory: {user_models_dir()}", file=sys.stderr)
    return 0


def _message(exc: BaseException, path: Path | None = None) -> str:
    """One line for a user error, naming ``path`` when the message does not already."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    if isinstance(exc, MemoryError) and "memory" not in str(exc):
        text = f"out of memory {str(exc)}".strip() + " (try --batch-size 1 or a smaller volume)"
    # an output error names the output; the input's name would only mislead
    if path is not None and not isinstance(exc, OutputError) and str(path) not in text and path.name not in text:
        text = f"{path}: {text}"
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line (no source line)."""
    say(f"warning: {' '.join(str(message).split())}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .progress import Cancelled

    old_show = warnings.showwarning
    warnings.showwarning = _show_warning
    received: list[bool] = []
    try:
        with _sigterm_raises(received):
            return int(COMMANDS[args.command](args) or 0)
    except USER_ERRORS as exc:  # CheckpointError, OctReadError, ... derive from HDCycleGANError
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except (KeyboardInterrupt, Cancelled):
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        if not received:
            raise
        # C code the signal interrupted may report it as its own error (numpy's tofile: a TypeError)
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        warnings.showwarning = old_show


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "denoise": cmd_denoise, "boundaries": cmd_boundaries, "demo": cmd_demo, "models": cmd_models}


@contextmanager
def _sigterm_raises(received: list[bool]) -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only); ``received``
    gets an entry when it arrives."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(True)
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
