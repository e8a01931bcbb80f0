"""Does the lateral smoothing fit another A-scan sampling? The same labelled scans, sampled otherwise.

A model's ``lateral_sigma`` is in pixels: chosen at one sampling, it smooths twice as far in µm on a
scan with half as many A-scans per mm. This script takes the labelled Tian b-scans (shared tools
folder), makes from each a copy at ``--factors`` times the A-scans per mm (0.5: every other A-scan,
a real half-sampled scan; above 1: linear interpolation across A-scans, which makes neighbouring
A-scans share their speckle as a denser acquisition does, approximately), and denoises each copy
with every ``--sigmas`` value. Per factor and sigma it prints:

* agreement (dB): offset-free PSNR between that output and the model's output at the native sampling
  (its own ``lateral_sigma``) sampled the same way: how well the copy's denoising reproduces the
  full scan's (a consistent method reads high at every sampling);
* layer CNR of the output (``real_scan_check.py``'s bands, moved with the sampling), beside that of the
  native output sampled the same way (CNR depends on the sampling: compare within a factor);
* at factor 0.5, split PSNR: each half-sampled copy (the even and the odd A-scans) denoised at that
  sigma and scored against the other raw half, which is what ``real_scan_check.py`` measures.

Asserts nothing. Example (the numbers in the README, "Smoothing across A-scans")::

    python scripts/sampling_check.py --subjects 5 --factors 0.5,2 --sigmas 0.55,1.1,2.2
    python scripts/sampling_check.py --subjects 5 --factors 1/3,3 --sigmas 0.37,1.1,3.3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED = Path(__file__).resolve().parents[2] / "shared"
Denoise = Callable[[np.ndarray], np.ndarray]


def resample_columns(image: np.ndarray, factor: float, start: int = 0) -> np.ndarray:
    """``image`` with ``factor`` times as many columns: every 1/factor-th from ``start`` for
    factor 1/k (no interpolation), linear interpolation across columns for factor > 1."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    x = np.asarray(image, dtype=np.float64)
    if factor <= 1:
        step = round(1 / factor)
        if not np.isclose(step * factor, 1):
            raise ValueError(f"factors below 1 must be 1/k for a whole k, got {factor}")
        return x[..., start::step]
    width = x.shape[-1]
    at = np.linspace(0, width - 1, int(round(width * factor)))
    lo = np.minimum(np.floor(at).astype(int), width - 2)
    frac = at - lo
    return x[..., lo] * (1 - frac) + x[..., lo + 1] * frac


def scores(denoise: Callable[[float], Denoise], native: np.ndarray, factor: float, sigma: float,
           image: np.ndarray, label: np.ndarray, rc: ModuleType) -> tuple[float, float, float, float]:
    """(agreement dB, layer CNR, the native output's layer CNR, split PSNR or NaN) of one b-scan at
    one factor and sigma; ``native`` is the model's output of ``image`` at its own sigma."""
    from napari_hdcyclegan.noise_measures import offset_free_psnr

    copy = resample_columns(image, factor).astype(np.float32)
    out = denoise(sigma)(copy)
    reference = resample_columns(native, factor)
    agreement = offset_free_psnr((out - reference) / 255.0)
    bands = rc.bands_of(resample_columns(label, factor), image.shape[0])
    cnr, native_cnr = (float(np.mean(rc.layer_stats(x, bands)[0])) for x in (out, reference))
    split = float("nan")
    if factor == 0.5:
        other = denoise(sigma)(resample_columns(image, 0.5, start=1).astype(np.float32))
        split = rc.split_psnr(out, other, image)
    return agreement, cnr, native_cnr, split


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="spectralis-real")
    p.add_argument("--subjects", default="5", help="comma-separated Tian subjects")
    p.add_argument("--factors", default="0.5,2", help="A-scans per mm relative to the scan: 1/k (e.g. 1/3), or above 1")
    p.add_argument("--sigmas", default="0.55,1.1,2.2", help="comma-separated lateral sigmas (px)")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    a = p.parse_args(argv)
    if not (a.data / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
    sys.path.insert(0, str(a.data / "tools"))
    import real_scan_check as rc

    from napari_hdcyclegan.engine import get_denoiser

    den = get_denoiser(a.weights, "cpu")
    den.precision = "fp32"
    try:
        factors = [float(Fraction(f)) for f in a.factors.split(",")]
    except (ValueError, ZeroDivisionError):
        raise SystemExit(f"error: --factors {a.factors}: expected numbers such as 0.5, 1/3 or 2") from None
    sigmas = [float(s) for s in a.sigmas.split(",")]
    for f in factors:
        resample_columns(np.zeros((1, 8)), f)  # refuse a bad factor before any work
    # lateral_sigma_check's sweep runs the generator once per image and smooths its output per sigma
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lateral_sigma_check import sweep

    by_sigma = sweep(den, sorted({den.config.lateral_sigma, *sigmas}))

    def denoise(sigma: float) -> Denoise:
        fn = by_sigma[f"sigma {sigma:4.2f}"]
        return lambda x: fn(x / 255.0) * 255.0

    rows: dict[tuple[float, float], list[tuple[float, float, float, float]]] = {}
    if not factors or not sigmas:
        raise SystemExit("error: give at least one factor and one sigma")
    for subject in (int(s) for s in a.subjects.split(",")):
        for _, im, lab in rc.load_subject(str(a.data / "data" / "layers" / "tian2015_octlayers"), subject):
            native = denoise(den.config.lateral_sigma)(im.astype(np.float32))
            for f in factors:
                for s in sigmas:
                    rows.setdefault((f, s), []).append(
                        scores(denoise, native, f, s, im, lab, rc))
    if not rows:
        raise SystemExit(f"error: no labelled b-scans of subjects {a.subjects} under {a.data}")
    print(f"{den.name} (its lateral_sigma {den.config.lateral_sigma} px), Tian subjects {a.subjects}, "
          f"{len(next(iter(rows.values())))} b-scans\n")
    print("| A-scans per mm (x) | sigma (px) | agreement with the native output (dB) | layer CNR (native output) "
          "| split PSNR (dB) |\n|---|---|---|---|---|")
    for (f, s), v in rows.items():
        agree, cnr, native_cnr, split = np.mean(v, axis=0)
        print(f"| {f:g} | {s:g} | {agree:.2f} | {cnr:.3f} ({native_cnr:.3f}) | "
              f"{'' if np.isnan(split) else f'{split:.2f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
