"""The command line's argument parser: sub-commands, options and value checks.

Building the parser imports no torch (``--help`` stays fast), so the model names and limits its
help text quotes are spelled out here; tests check them against :mod:`.model`. Value types raise
:class:`argparse.ArgumentTypeError` with a user-facing message and carry a user-facing
``__name__``: argparse prints ``invalid <__name__> value`` for any other failure.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: ``model.choice.AUTO``, ``model.choice.BOUNDARY_MODEL`` and ``model.checkpoint.MAX_LATERAL_SIGMA``.
AUTO, BOUNDARY_MODEL, MAX_LATERAL_SIGMA = "auto", "spectralis-sim", 16.0
#: The device names ``devices.resolve_device`` accepts.
DEVICE_HELP = "auto (the first CUDA GPU, else the CPU), cpu, cuda, cuda:N or mps (Apple GPUs) (default: auto)"
#: What ``-q`` hides, said in ``--help`` and the README.
QUIET_HELP = ("no progress bar and no final 'wrote ...' line (model:, warning: and error: lines are "
              "always printed)")


def _named(name: str) -> Callable[[Callable], Callable]:
    """Give an argparse type function the name argparse shows in its ``invalid NAME value`` errors."""
    def rename(func: Callable) -> Callable:
        func.__name__ = name
        return func
    return rename


def _number(text: str, cast: Callable[[str], float] = float) -> float:
    """``text`` as a finite number, or an argparse error that says so."""
    try:
        value = cast(text)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


@_named("whole number")
def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@_named("lateral sigma")
def lateral_sigma(text: str) -> float:
    """A lateral smoothing sigma in pixels, in the range every model config accepts."""
    from .model.checkpoint import MAX_LATERAL_SIGMA, valid_lateral_sigma  # torch: only when given

    value = _number(text)
    if not valid_lateral_sigma(value):
        raise argparse.ArgumentTypeError(f"lateral smoothing must be from 0 to {MAX_LATERAL_SIGMA:g} pixels, "
                                         f"got {text}")
    return value


@_named("positive number")
def positive_float(text: str) -> float:
    """A number > 0 (pixel sizes)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


@_named("path")
def path(text: str) -> str:
    """A file or folder name that is not empty (an empty ``OUT`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty path ({text!r}) names no file or folder")
    return text


#: ``--adapt`` without ``--adapt-steps``, and the most steps taken (``napari_hdcyclegan.adapt``'s
#: ``DEFAULT_STEPS`` and ``MAX_STEPS``; copied here: parsing imports no torch).
ADAPT_STEPS = 60
MAX_ADAPT_STEPS = 5000


@_named("number of adaptation steps")
def adapt_steps(text: str) -> int:
    """An integer from 1 to ``MAX_ADAPT_STEPS``."""
    value = int(_number(text, int))
    if not 1 <= value <= MAX_ADAPT_STEPS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_ADAPT_STEPS}, got {value}")
    return value


def adaptation_steps(args: argparse.Namespace) -> int | None:
    """Steps of ``denoise``'s adaptation (``--adapt``, ``--adapt-steps``), or None without it."""
    if args.adapt_steps is not None:
        return int(args.adapt_steps)
    return ADAPT_STEPS if args.adapt else None


def _common(p: argparse.ArgumentParser, weights_help: str, batch: bool = True) -> None:
    """The model, device, precision, batch and quiet options every model-running command takes."""
    p.add_argument("--weights", "-w", metavar="W", help=weights_help)
    p.add_argument("--device", "-d", default="auto", help=DEVICE_HELP)
    # the values of devices.PRECISIONS, spelled out: the CLI loads torch only once it runs a model
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default=None,
                   help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16 (default: auto)")
    if batch:
        p.add_argument("--batch-size", "-b", type=positive_int, help="b-scans per batch")
    p.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the sub-commands; ``args.command`` names the one given."""
    parser = argparse.ArgumentParser(prog="python -m napari_hdcyclegan",
                                     description="HDcycleGAN denoising of retinal OCT (headless).")
    sub = parser.add_subparsers(dest="command", required=True)
    denoise_weights = (f"{AUTO} (the default: a shipped model picked per input by its noise level), "
                       "a shipped or user model name, or a model folder")

    p = sub.add_parser("denoise", help="denoise a b-scan/volume file or a folder of them")
    p.add_argument("input", metavar="IN", type=path, help="TIFF/PNG/JPEG/vendor file, or a folder of them")
    p.add_argument("output", metavar="OUT", type=path, help="output file (.tif/.tiff, or .png for one 8/16-bit b-scan; "
                                                 "JPEG is refused as lossy), or an existing folder that "
                                                 "receives OUT/<name> (JPEG inputs are written as .png, "
                                                 "vendor files as .tif); a folder when IN is one")
    p.add_argument("--lateral-sigma", type=lateral_sigma, metavar="PX",
                   help=f"smoothing across A-scans after the model, Gaussian sigma in pixels, 0 to "
                        f"{MAX_LATERAL_SIGMA:g} (default: the model's own, see its config; 0 = none)")
    p.add_argument("--adapt", action="store_true",
                   help=f"first fine-tune the model on each input's own column halves (Noise2Noise, "
                        f"{ADAPT_STEPS} steps; ~0.7 s a step on a CPU core), keeping the result only if it "
                        f"scores better on columns it did not train on: for scans from a scanner the "
                        f"shipped models were not trained on (not run where neighbouring A-scans share "
                        f"speckle, as on most averaged Spectralis scans)")
    p.add_argument("--adapt-steps", type=adapt_steps, metavar="STEPS",
                   help=f"steps of --adapt, 1 to {MAX_ADAPT_STEPS} (implies --adapt; default {ADAPT_STEPS})")
    _common(p, denoise_weights)

    p = sub.add_parser("boundaries", help="ILM/RPE per A-scan to CSV (from the model's feature maps)")
    p.add_argument("input", metavar="IN", type=path)
    p.add_argument("output", metavar="OUT.csv", type=path)
    p.add_argument("--axial-um", type=positive_float, help="axial µm per pixel (default: from IN)")
    _common(p, f"{AUTO} (the default: the shipped {BOUNDARY_MODEL} model, whose smoother output suits "
               "the boundary paths), a shipped or user model name, or a model folder", batch=False)

    p = sub.add_parser("demo", help="denoise the bundled simulated volume; PNG + TIFFs; napari if a display exists")
    p.add_argument("--out", default="hdcyclegan-demo", type=path, help="output folder (default: ./hdcyclegan-demo)")
    p.add_argument("--no-viewer", action="store_true", help="do not open napari")
    _common(p, denoise_weights)

    sub.add_parser("models", help="list the shipped and your own (trained in napari) models")
    return parser
