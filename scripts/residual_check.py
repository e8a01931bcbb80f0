"""Does a model leave structure in its residual? Three no-reference measures on real scans, per model.

For each model folder or name given (``--weights a,b,...``; ``bm3d`` scores BM3D x5), on the real
scans without a clean reference that ``adapt_check.py`` uses (Tian subject 5 b-scans 01/04/07/10, the
``.vol`` scans, the single noisy scans):

* split PSNR (dB): the method run on the even/odd column halves, scored against the other half
  (:func:`napari_hdcyclegan.metrics.split_psnr`); higher keeps more of the scene.
* residual-edge correlation (:func:`napari_hdcyclegan.profiles.residual_edge_correlation`): about 0 or
  below when the residual is noise, positive when the method blurred or shifted the layer edges.
* profile change (8-bit grey levels; :func:`napari_hdcyclegan.profiles.mean_profile_change`): how much
  the mean A-scan profile around the brightest layer moved.

Means over the scans, and with ``--per-scan`` a row per scan with the raw scan's
:func:`napari_hdcyclegan.metrics.lateral_noise_ratio` (below 0.8 neighbouring A-scans share speckle and
split PSNR rewards keeping it: compare methods there on other measures). A checkpoint folder of a training run
(``RUN/last``, ``RUN/best``) works as well as an exported model.

    python scripts/residual_check.py --weights spectralis-real,runs/x/best [--only NAME,...] [--per-scan]

``--wiener S,PX,C`` adds, for each model of ``--weights``, a variant at lateral sigma S followed by
``lateral_sigma_check.local_wiener`` (window PX, noise level C; docs/real_training.md, section 36).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def method(weights: str, image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The denoising function a ``--weights`` entry names, as chosen for ``image``."""
    if weights == "bm3d":
        from napari_hdcyclegan.baselines import denoise_bm3d

        return lambda b: denoise_bm3d(b, sigma_scale=5.0)
    from napari_hdcyclegan.engine import choose_denoiser

    return choose_denoiser(weights, "cpu", data=image)[0].denoise


def wiener_method(weights: str, image: np.ndarray,
                  spec: tuple[float, float, float]) -> Callable[[np.ndarray], np.ndarray]:
    """The model ``weights`` chooses for ``image`` at lateral sigma ``spec[0]``, then a local Wiener correction
    (window ``spec[1]`` px, noise level ``spec[2]``)."""
    from lateral_sigma_check import local_wiener

    from napari_hdcyclegan.engine import choose_denoiser

    den = choose_denoiser(weights, "cpu", data=image)[0].with_lateral_sigma(spec[0])
    return lambda b: local_wiener(b, den.denoise(b), spec[1], spec[2])


def scores(denoise: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> tuple[float, float, float]:
    """(split PSNR dB, residual-edge correlation, profile change in grey levels) of one method on one scan."""
    from napari_hdcyclegan import metrics
    from napari_hdcyclegan.profiles import mean_profile_change, residual_edge_correlation

    out = denoise(image)
    return (metrics.split_psnr(image, denoise), residual_edge_correlation(out, image),
            255 * mean_profile_change(out, image))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="auto", help="comma-separated model names or folders; 'bm3d' for BM3D x5")
    p.add_argument("--only", help="comma-separated scan names, e.g. vol/valid/0")
    p.add_argument("--per-scan", action="store_true", help="a row per scan as well as the means")
    p.add_argument("--data", type=Path, help="the shared data folder")
    from lateral_sigma_check import wiener_spec

    p.add_argument("--wiener", type=wiener_spec, action="append", default=[], metavar="S,PX,C",
                   help="also each model at lateral sigma S, then a local Wiener correction (measured, not shipped)")
    a = p.parse_args(argv)
    from adapt_check import real_scans

    from training.real import default_shared_data

    scans = real_scans(a.data or default_shared_data())
    if a.only:
        scans = [s for s in scans if s[0] in a.only.split(",")]
    if not scans:
        raise SystemExit("error: no scans to score (check --only and --data)")
    from napari_hdcyclegan.metrics import lateral_noise_ratio

    print("| weights | scan | split PSNR (dB) | residual-edge correlation | profile change | lateral noise ratio |\n"
          "|---|---|---:|---:|---:|---:|")
    ratios = [lateral_noise_ratio(image) for _, image in scans] if a.per_scan else []
    variants = [(w, lambda image, w=w: method(w, image)) for w in a.weights.split(",")]
    variants += [(f"{w} sigma {spec[0]:g} + wiener {spec[1]:g} px / {spec[2]:g}",
                  lambda image, w=w, spec=spec: wiener_method(w, image, spec))
                 for spec in a.wiener for w in a.weights.split(",") if w != "bm3d"]
    for weights, make in variants:
        rows = np.array([scores(make(image), image) for _, image in scans])
        if a.per_scan:
            for (name, _), ratio, (db, edge, prof) in zip(scans, ratios, rows):
                print(f"| {weights} | {name} | {db:.2f} | {edge:+.3f} | {prof:.2f} | {ratio:.2f} |")
        db, edge, prof = rows.mean(axis=0)
        print(f"| {weights} | mean of {len(scans)} | {db:.3f} | {edge:+.3f} | {prof:.2f} | |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
