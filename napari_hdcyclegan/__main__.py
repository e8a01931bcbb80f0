"""Command line: ``python -m napari_hdcyclegan {demo,denoise,boundaries} ...``.

User errors (missing or unreadable files, wrong dimensions, bad weights, an output that cannot
hold the result, out of memory) are :class:`napari_hdcyclegan.errors.HDCycleGANError` (or
MemoryError / OSError): they print one ``error: ...`` line and exit with status 2; any other
exception is a bug and keeps its traceback. SIGTERM is handled like Ctrl-C, so that no partial
output is left behind (exit status 143).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HDCycleGANError

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


def _tqdm_progress(desc: str, quiet: bool, total: int | None = None):
    """A tqdm bar and a ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, total=total, unit="b-scan", disable=quiet, leave=True, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return bar, progress


# ------------------------------------------------------------------------------------------------
# denoise


def cmd_denoise(args: argparse.Namespace) -> int:
    """``denoise IN OUT``: a file to a file, or a folder to a folder of same-named files."""
    from .denoise_files import denoise_file, plan_jobs

    src, dst = Path(args.input), Path(args.output)
    jobs = plan_jobs(src, dst)  # every output checked before the model is loaded
    denoiser = _chooser(args)
    failed = 0
    for f, out in jobs:
        bar, progress = _tqdm_progress(f.name, args.quiet)
        try:
            denoise_file(f, out, denoiser, progress)
        except USER_ERRORS as exc:
            if len(jobs) == 1:
                raise
            failed += 1
            gc.collect()  # after an out-of-memory error, the next file starts clean
            print(f"error: {_message(exc, f)}", file=sys.stderr)
        finally:
            bar.close()
    if failed:
        print(f"error: {failed} of {len(jobs)} files failed", file=sys.stderr)
        return EXIT_USER_ERROR
    if not args.quiet:
        name = getattr(denoiser, "name", "the model chosen per file")
        print(f"wrote {len(jobs)} file(s) to {dst if src.is_dir() else jobs[0][1]} with {name}")
    return 0


def _chosen(args: argparse.Namespace, data: Any = None) -> tuple[Any, Any]:
    """The resident denoiser for ``--weights`` / ``--device`` / ``--batch-size`` (and ``data``), and
    why ``auto`` chose it (None otherwise), which is printed."""
    from .engine import DEFAULT_MODEL, choose_denoiser

    denoiser, choice = choose_denoiser(args.weights or DEFAULT_MODEL, args.device, data=data)
    if getattr(args, "batch_size", None):
        denoiser.batch_size = args.batch_size
    if getattr(args, "precision", None):
        denoiser.precision = args.precision
    denoiser = denoiser.with_lateral_sigma(getattr(args, "lateral_sigma", None))
    if choice is not None and not getattr(args, "quiet", False):
        print(f"model: {denoiser.name} (auto: {choice.reason}; --weights overrides)", file=sys.stderr)
    return denoiser, choice


def _denoiser(args: argparse.Namespace, data: Any = None) -> Any:
    """:func:`_chosen` without the choice."""
    return _chosen(args, data)[0]


def _chooser(args: argparse.Namespace) -> Any:
    """A denoiser, or for ``--weights auto`` (the default) a function of the input returning
    ``(denoiser, choice)``."""
    from .engine import DEFAULT_MODEL
    from .model.choice import AUTO

    if str(args.weights or DEFAULT_MODEL) != AUTO:
        return _denoiser(args)
    return lambda data: _chosen(args, data)


# ------------------------------------------------------------------------------------------------
# boundaries


def cmd_boundaries(args: argparse.Namespace) -> int:
    """``boundaries IN OUT.csv``: ILM/RPE per A-scan from the model's feature maps."""
    from . import boundaries as bnd
    from .io import um_per_pixel
    from .io.atomic import check_writable

    src, dst = Path(args.input), Path(args.output)
    if not src.exists():
        raise UserError(f"{src}: no such file or folder")
    if dst.suffix.lower() != ".csv":
        raise UserError(f"{dst}: the output must be a .csv file")
    if not dst.parent.is_dir():
        raise UserError(f"{dst.parent}: output folder does not exist")
    check_writable(dst.parent, dst)
    image = read_input(src)
    axial = args.axial_um
    if axial is None:
        axial = um_per_pixel(getattr(image, "scale", None), getattr(image, "units", None), -2)
    from .engine import DEFAULT_MODEL
    from .model.choice import boundary_weights

    args.weights = boundary_weights(args.weights or DEFAULT_MODEL)
    denoiser = _denoiser(args, image.data)
    n = image.data.shape[0] if image.data.ndim == 3 else 1
    bar, progress = _tqdm_progress(f"{src.name} boundaries", args.quiet, n)
    try:
        lines = bnd.model_boundaries(np.asarray(image.data), denoiser, progress=progress)
    finally:
        bar.close()
    from .io import atomic_output

    if axial is None:
        warnings.warn(f"{src} has no axial pixel size in µm: thickness_um left empty (pass --axial-um)",
                      stacklevel=2)
    with atomic_output(dst) as tmp:
        bnd.write_boundaries_csv(tmp, lines, axial)
    if not args.quiet:
        print(f"wrote {dst}: {bnd.summary(lines)}")
    return 0


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
        print("note: BM3D panel skipped (pip install 'napari-hdcyclegan[bm3d]')", file=sys.stderr)
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
    from .engine import DEFAULT_MODEL, choose_denoiser
    from .simulate import SPECTRALIS_UM_PER_PX, load_sample_volume

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    vol = load_sample_volume()
    denoiser, choice = choose_denoiser(args.weights or DEFAULT_MODEL, args.device, data=vol.hn)
    bar, progress = _tqdm_progress("sample volume", args.quiet, vol.hn.shape[0])
    try:
        denoised = denoiser.denoise(vol.hn, progress=progress)
    finally:
        bar.close()
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
    print(f"wrote {out_dir / 'sample_denoised.tif'}, {out_dir / 'sample_raw.tif'} and {png}")
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
    """Print the shipped and user models: name, origin, trained, folder."""
    from .model.registry import list_models, user_models_dir

    for e in list_models():
        print(f"{e.name}\t{e.origin}\t{'trained' if e.trained else 'UNTRAINED'}\t{e.path}")
    print(f"user models directory: {user_models_dir()}", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the three sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m napari_hdcyclegan",
                                     description="HDcycleGAN denoising of retinal OCT (headless).")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, batch: bool = True) -> None:
        p.add_argument("--weights", "-w", help="shipped model name or model directory "
                                               "(default: the shipped default model)")
        p.add_argument("--device", "-d", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
        # the values of devices.PRECISIONS, spelled out: the CLI loads torch only once it runs a model
        p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                       help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16 (default: auto)")
        if batch:
            p.add_argument("--batch-size", "-b", type=_positive_int, help="b-scans per batch")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("denoise", help="denoise a b-scan/volume file or a folder of them")
    p.add_argument("input", metavar="IN", help="TIFF/PNG/JPEG/vendor file, or a folder of them")
    p.add_argument("output", metavar="OUT", help="output file (.tif/.tiff, or .png for one 8/16-bit b-scan; "
                                                 "JPEG is refused as lossy), or a folder when IN is one "
                                                 "(JPEG inputs are written as .png, vendor files as .tif)")
    p.add_argument("--lateral-sigma", type=_non_negative_float, metavar="PX",
                   help="smoothing across A-scans after the model, Gaussian sigma in pixels "
                        "(default: the model's own, see its config; 0 = none)")
    common(p)
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("boundaries", help="ILM/RPE per A-scan to CSV (from the model's feature maps)")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT.csv")
    p.add_argument("--axial-um", type=_positive_float, help="axial µm per pixel (default: from IN)")
    common(p, batch=False)
    p.set_defaults(func=cmd_boundaries)

    p = sub.add_parser("demo", help="denoise the bundled simulated volume; PNG + TIFFs; napari if a display exists")
    p.add_argument("--out", default="hdcyclegan-demo", help="output folder (default: ./hdcyclegan-demo)")
    p.add_argument("--no-viewer", action="store_true", help="do not open napari")
    common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list the shipped and your own (trained in napari) models")
    p.set_defaults(func=cmd_models)
    return parser


def _message(exc: BaseException, path: Path | None = None) -> str:
    """One line for a user error, naming ``path`` when the message does not already."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    if isinstance(exc, MemoryError) and "memory" not in str(exc):
        text = f"out of memory {str(exc)}".strip() + " (try --batch-size 1 or a smaller volume)"
    if path is not None and str(path) not in text and path.name not in text:
        text = f"{path}: {text}"
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``warning: ...`` line (no source line)."""
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .progress import Cancelled

    old_show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        with _sigterm_raises():
            return int(args.func(args) or 0)
    except USER_ERRORS as exc:  # CheckpointError, OctReadError, ... derive from HDCycleGANError
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except (KeyboardInterrupt, Cancelled):
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = old_show


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())
