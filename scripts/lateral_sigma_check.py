"""How much lateral smoothing after the generator? A sweep of ``lateral_sigma`` on real and simulated scans.

A model's ``config.json`` may set ``lateral_sigma``: a Gaussian across A-scans applied to the
generator's output (``napari_hdcyclegan.model.networks.lateral_smooth``). This script runs one model
with several values and prints, per value:

* ``--tian SUBJECTS``: on the labelled Tian b-scans, the measures of ``real_scan_check.py`` (shared
  tools folder): layer CNR, contrast kept, split PSNR (the model and the filter run on the column
  halves), and the std of the 3-px smoothed residual raw - output;
* ``--sim N``: PSNR / SSIM against the clean truth on N randomised simulated maculae
  (``simulate_random`` parameters, 6-30 frames, 496 x 512), independent of any real scan;
* ``--truth N``: offset-free PSNR against the conditional mean of N simulated maculae matched to the
  real scans' speckle (``simulate.truth_pairs``, the scenes of ``training.fit --val-sim``), per regime:
  speckle shared between neighbouring A-scans (as on the Tian and Willis scans) or independent;
* ``--duke SPLIT``: PSNR / SSIM / MSR / CNR against the Duke averages (``training.evaluate``'s
  scoring, registered); ``--column-step K`` keeps every K-th A-scan (a coarser lateral sampling).

``--bilateral PX:RANGE`` adds, after each sigma, an edge-preserving smoothing across A-scans
(:func:`lateral_bilateral`; measured in docs/real_training.md section 28, used by no model).
``--show DIR`` saves pictures of each method beside the raw b-scan of every real source, with the
residuals: scores that rise can hide a filter that paints (section 28).

The generator runs once per image; each sigma's filter is applied to its unclipped output, then
clipped and mapped back to the input's range and dtype as the denoiser does (the same images up to
float rounding). Asserts nothing. Example (the numbers in docs/real_training.md, section 6)::

    python scripts/lateral_sigma_check.py --weights spectralis-real --tian 1,2,3,4,5 --sim 12
    python scripts/lateral_sigma_check.py --weights bioptigen-duke --duke val --sigmas 0,1,2,3
    python scripts/lateral_sigma_check.py --weights spectralis-real --truth 16 --sigmas 0.8,1,1.25,1.5
    python scripts/lateral_sigma_check.py --tian 5 --sim 12 --truth 16 --sigmas 0.8,1.1 --bilateral 6:0.025
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from napari_hdcyclegan.adjustments import lift, lower
from napari_hdcyclegan.intensity import from_unit, to_unit, unit_range
from napari_hdcyclegan.model.networks import lateral_smooth

SHARED = Path(__file__).resolve().parents[2] / "shared"
Denoise = Callable[[np.ndarray], np.ndarray]


def cached(fn: Denoise, size: int = 16) -> Denoise:
    """``fn`` remembering its last ``size`` results by image content (returned read-only)."""
    @functools.lru_cache(maxsize=size)
    def run(data: bytes, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        out = fn(np.frombuffer(data, dtype).reshape(shape).copy())
        out.flags.writeable = False
        return out

    return lambda x: run(np.ascontiguousarray(x).tobytes(), x.shape, x.dtype.str)


def as_float(fn: Denoise) -> Denoise:
    """``fn`` with float64 output."""
    return lambda x: np.asarray(fn(x), np.float64)


def sweep(den: Any, sigmas: list[float], bilateral: Sequence[tuple[float, float]] = (),
          wiener: Sequence[tuple[float, float]] = ()) -> dict[str, Denoise]:
    """Per sigma (and per ``(px, range)`` of ``bilateral`` or ``(px, c)`` of ``wiener`` after it), the model
    with that lateral smoothing, by label (float64 out, in the input's range)."""
    views = {s: den.with_lateral_sigma(s) for s in sigmas}  # refuses a sigma out of range
    if den.normalisation.get("log_input", False):
        if bilateral:
            raise SystemExit("--bilateral: not for models with log_input normalisation")
        # the denoiser maps log-display values back non-linearly: one run per sigma
        return with_wiener({f"sigma {s:4.2f}": as_float(view.denoise) for s, view in views.items()}, wiener)
    # the "final" stage is the generator's output before the denoiser clips it to [0, 1], in the units the
    # generator sees: a model's background offset and dim gain (adjustments.lift) are undone after the smoothing
    raw = cached(lambda x: den.feature_maps(x, "final", 0)[0], 64)

    def smoothed(x: np.ndarray, sigma: float, edge: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        y = lateral_bilateral(lateral_smooth(torch.tensor(raw(x)), sigma), *edge).clamp_(0.0, 1.0)
        lo, hi = unit_range(x, den.normalisation)
        _, gain, offset = lift(torch.from_numpy(np.asarray(to_unit(x, lo, hi), np.float32))[None], den.normalisation)
        return from_unit(lower(y[None], gain, offset)[0].numpy(), lo, hi, x.dtype).astype(np.float64)

    fns: dict[str, Denoise] = {}
    for s in sigmas:
        fns[f"sigma {s:4.2f}"] = functools.partial(smoothed, sigma=s)
        for px, rng in bilateral:
            fns[f"sigma {s:4.2f} + bilateral {px:g} px / {rng:g}"] = functools.partial(smoothed, sigma=s,
                                                                                      edge=(px, rng))
    return with_wiener(fns, wiener)


def with_wiener(fns: dict[str, Denoise], wiener: Sequence[tuple[float, float]]) -> dict[str, Denoise]:
    """``fns`` and, after each Gaussian-only one, one per ``(px, c)`` of ``wiener`` (:func:`local_wiener`)."""
    out = dict(fns)
    for label, fn in fns.items():
        if "+" in label:
            continue
        for px, c in wiener:
            out[f"{label} + wiener {px:g} px / {c:g}"] = functools.partial(
                lambda x, f, px, c: local_wiener(x, f(x), px, c), f=fn, px=px, c=c)
    return out


def wiener_spec(text: str) -> tuple[float, float, float]:
    """``S,PX,C`` (lateral sigma, window, noise level; all > 0) for the ``--wiener`` options of
    ``tradeoff_curve.py`` and ``residual_check.py``."""
    try:
        spec = tuple(float(v) for v in text.split(","))
    except ValueError:
        spec = ()
    if len(spec) != 3 or min(spec) <= 0:
        raise argparse.ArgumentTypeError(f"--wiener {text!r}: expected S,PX,C, all > 0")
    return spec  # type: ignore[return-value]


def off_floor(raw: np.ndarray, window: float) -> np.ndarray:
    """Pixels more than about ``window`` px from the b-scan's black floor (the padding of many exports):
    where a noise level may be measured."""
    y = np.asarray(raw, np.float64)
    return gaussian_filter((y <= y.min()).astype(np.float64), window) < 0.01


def local_wiener(raw: np.ndarray, estimate: np.ndarray, window: float, c: float) -> np.ndarray:
    """``estimate`` moved back towards ``raw`` where their difference is more than noise (Lee's local
    Wiener filter on the residual): ``estimate + g (raw - estimate)``, ``g = max(v - n, 0) / v``, with
    ``v`` the residual's local mean square (Gaussian window of ``window`` px) and ``n`` = ``c`` x its
    median over the image away from the raw scan's floor (the black padding of many exports, where the
    residual is 0, would otherwise set the noise level near 0), the noise's level where the estimate is
    right. Where a smoothing took structure with the noise (an edge, a vessel shadow) ``v`` exceeds ``n``
    and part of it comes back; measured after a wider Gaussian, not shipped (docs/real_training.md,
    section 36).

    Parameters
    ----------
    raw, estimate : numpy.ndarray
        The input b-scan and a denoised estimate of it, same shape, same units.
    window : float
        Standard deviation of the Gaussian window, in pixels (both axes).
    c : float
        The noise level as a multiple of the median local mean square, > 0.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``raw``.
    """
    y = np.asarray(raw, np.float64)
    r = y - np.asarray(estimate, np.float64)
    v = gaussian_filter(r * r, window)
    away = off_floor(y, window)
    n = c * float(np.median(v[away] if away.any() else v))
    return y - r + np.clip(v - n, 0.0, None) / np.maximum(v, 1e-12) * r


def lateral_bilateral(y: torch.Tensor, sigma: float, range_sigma: float) -> torch.Tensor:
    """Edge-preserving (bilateral) smoothing of a ``(..., H, W)`` batch along W (across A-scans).

    Each pixel becomes a weighted mean of the pixels of its row within ``3 * sigma`` A-scans, weighted
    by ``exp(-d² / 2 sigma²) * exp(-Δ² / 2 range_sigma²)`` for a lateral distance ``d`` and an intensity
    difference ``Δ``, edges replicated. Left-over speckle inside a layer differs little from its
    neighbours and is averaged; a vessel shadow or the ILM at the foveal pit differs by more than
    ``range_sigma`` and is kept, where a Gaussian of the same width would blur it into the residual.
    ``sigma <= 0`` or ``range_sigma <= 0`` returns ``y`` unchanged. Measured after the shipped Gaussian
    (docs/real_training.md, section 28): it raises every score with a reference and lowers the
    residual-edge correlation, but it staircases curved layers and turns the left-over noise of the
    noisiest scans into horizontal scratches, so no model uses it.

    Parameters
    ----------
    y : torch.Tensor
        ``(..., H, W)``, floating point, in the model's [0, 1] units.
    sigma : float
        Spatial standard deviation in pixels (A-scans).
    range_sigma : float
        Intensity standard deviation, in the units of ``y``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype.
    """
    if sigma <= 0 or range_sigma <= 0:
        return y
    radius = int(3.0 * sigma + 0.5)
    rows = y.float().reshape(-1, y.shape[-1])
    width = rows.shape[-1]
    padded = torch.cat([rows[:, :1].expand(-1, radius), rows, rows[:, -1:].expand(-1, radius)], -1)
    total, weights, w = torch.zeros_like(rows), torch.zeros_like(rows), torch.empty_like(rows)
    for d in range(-radius, radius + 1):
        shifted = padded[:, radius + d:radius + d + width]
        torch.sub(shifted, rows, out=w)
        # capped before exp: weights far below float32's normal range (denormals) are ~15x slower on CPUs
        w.mul_(1.0 / range_sigma).square_().clamp_(max=50.0).mul_(-0.5).exp_()
        w.mul_(math.exp(-0.5 * (d / sigma) ** 2))
        total.addcmul_(w, shifted)
        weights.add_(w)
    return (total / weights).reshape(y.shape).to(y.dtype)


def tian(fns: dict[str, Denoise], subjects: list[int], shared: Path) -> None:
    """Layer CNR, contrast kept, split PSNR and residual structure on the Tian b-scans, per method.

    Split PSNR runs each method on the column halves; the residual is raw - output, smoothed 3 px.
    ``scripts/column_split_check.py`` scores its methods with this too.
    """
    sys.path.insert(0, str(shared / "tools"))
    import real_scan_check as rc

    res: dict[str, dict[str, list]] = {m: {"cnr": [], "kept": [], "split": [], "resid": []} for m in fns}
    for subject in subjects:
        for _, im, lab in rc.load_subject(str(shared / "data" / "layers" / "tian2015_octlayers"), subject):
            bands = rc.bands_of(lab, im.shape[0])
            raw_diff = np.maximum(np.array(rc.layer_stats(im, bands)[1]), 1e-6)
            even, odd = rc.halves(im)
            for m, fn in fns.items():
                out = fn(im)
                cnr, diff = rc.layer_stats(out, bands)
                res[m]["cnr"].append(np.mean(cnr))
                res[m]["kept"].extend(np.array(diff) / raw_diff)
                res[m]["split"].append(rc.split_psnr(fn(even), fn(odd), im))
                res[m]["resid"].append(gaussian_filter(im - out, 3).std())
    print(f"Tian subjects {subjects}, {len(res[next(iter(fns))]['cnr'])} b-scans")
    for m, v in res.items():
        print(f"  {m}: layer CNR {np.mean(v['cnr']):.3f}  contrast kept {np.median(v['kept']):.3f}  "
              f"split PSNR {np.mean(v['split']):.2f} dB  smoothed residual std {np.mean(v['resid']):.3f}")


def sim(fns: dict[str, Denoise], n: int) -> None:
    """PSNR / SSIM against the clean truth on randomised simulated maculae."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from napari_hdcyclegan.simulate.randomized import random_params, simulate_from_params

    scores: dict[str, list[tuple[float, float]]] = {s: [] for s in fns}
    seed = 0
    while len(scores[next(iter(fns))]) < n:
        seed += 1
        p = random_params(seed)
        if p.geometry != "macula" or not 6 <= p.hn_frames <= 30:
            continue
        b = simulate_from_params(replace(p, shape=(496, 512)))
        for s, fn in fns.items():
            out = fn(b.hn)
            scores[s].append((peak_signal_noise_ratio(b.clean, out, data_range=1.0),
                              structural_similarity(b.clean, out, data_range=1.0)))
    print(f"simulated maculae (simulate_random seeds 1..{seed}, 6-30 frames), {n} b-scans, against the clean truth")
    for s, v in scores.items():
        psnr, ssim = np.mean(v, axis=0)
        print(f"  {s}: PSNR {psnr:.2f} dB  SSIM {ssim:.3f}")


def truth(fns: dict[str, Denoise], n: int, seed: int = 90_000) -> None:
    """Offset-free PSNR against the conditional mean of simulated maculae, per speckle regime."""
    from napari_hdcyclegan.metrics import offset_free_psnr
    from napari_hdcyclegan.simulate import truth_pairs

    scores: dict[str, list[float]] = {s: [] for s in fns}
    for scan, mean in truth_pairs(n, seed=seed):  # alternating regimes: shared speckle first
        for s, fn in fns.items():
            scores[s].append(offset_free_psnr(fn(scan) - mean))
    print(f"simulated maculae (simulate.truth_pairs seeds {seed}..{seed + n - 1}), {n} b-scans, "
          "offset-free against the conditional mean: all / shared speckle / independent A-scans")
    for s, v in scores.items():
        print(f"  {s}: PSNR {np.mean(v):.3f} / {np.mean(v[0::2]):.3f} / {np.mean(v[1::2]):.3f} dB")


def duke(fns: dict[str, Denoise], split: str, column_step: int = 1, frames: tuple[int, ...] = (1,)) -> None:
    """PSNR / SSIM / MSR / CNR against the Duke averages; ``column_step`` K keeps every K-th A-scan of
    both (a scanner with a K times coarser lateral sampling); ``frames``: means of that many registered
    frames of the dt1 subjects (1: the single frames of every subject)."""
    from napari_hdcyclegan import metrics
    from training.data import duke_pairs
    from training.frames import frame_average_pairs

    rows: dict[str, list[list[float]]] = {s: [] for s in fns}
    pairs = [p for k in frames for p in (duke_pairs(split) if k == 1 else frame_average_pairs(split, k))]
    for _, noisy, average in pairs:
        noisy, average = noisy[:, ::column_step], average[:, ::column_step]
        outs = {str(s): fn(noisy).astype(np.float32) for s, fn in fns.items()}
        scores = metrics.score_methods(outs, average, align=True)
        for s in fns:
            rows[s].append([scores[str(s)][k] for k in ("PSNR", "SSIM", "MSR", "CNR")])
    step = f", every {column_step}-th A-scan only" if column_step > 1 else ""
    print(f"Duke {split} split, {len(pairs)} pairs ({'/'.join(map(str, frames))} frames){step}, against average.tif")
    for s, v in rows.items():
        psnr, ssim, msr, cnr = np.mean(v, axis=0)
        print(f"  {s}: PSNR {psnr:.2f} dB  SSIM {ssim:.3f}  MSR {msr:.2f}  CNR {cnr:.2f}")


def show(fns: dict[str, Denoise], out_dir: Path, data: Path, window: tuple[int, int] = (200, 300)) -> None:
    """Pictures: per real source (``real_scan_report.scans``), a window at the brightest layer of the raw
    b-scan and of each method (top, 2x), and each residual smoothed 1.5 x 4 px (bottom, grey 0, one
    scale per scan: the first method's 99.5th percentile at half the grey range)."""
    from skimage.io import imsave

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real_scan_report import scans

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, im in scans(data / "data"):
        im = im.astype(np.float64)
        smooth = gaussian_filter(im, 10)
        row = int(np.argmax(smooth.mean(axis=1)))
        col = int(np.argmax(smooth[row]))
        r0 = int(np.clip(row - window[0] // 2, 0, max(im.shape[0] - window[0], 0)))
        c0 = int(np.clip(col - window[1] // 2, 0, max(im.shape[1] - window[1], 0)))
        crop = (slice(r0, r0 + window[0]), slice(c0, c0 + window[1]))
        outs = [fn(im) for fn in fns.values()]
        top = np.concatenate([im[crop]] + [o[crop] for o in outs], axis=1)
        res = [gaussian_filter(im - o, (4, 1.5))[crop] for o in outs]
        gain = 0.5 / max(float(np.percentile(np.abs(res[0]), 99.5)), 1e-6)  # one scale per scan: the first's
        res = [np.clip(0.5 + gain * r, 0, 1) for r in res]
        bottom = np.concatenate([np.full_like(im[crop], 0.5)] + res, axis=1)
        picture = np.kron(np.clip(np.concatenate([top, bottom]), 0, 1), np.ones((2, 2)))
        stem = "".join(c if c.isalnum() else "_" for c in name).strip("_")
        imsave(out_dir / f"{stem}.png", (picture * 255).astype(np.uint8), check_contrast=False)
    print(f"pictures in {out_dir}: raw | {' | '.join(fns)}; smoothed residuals below")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="spectralis-real")
    p.add_argument("--sigmas", default="0,0.8,1,1.3,1.6", help="comma-separated lateral_sigma values (px)")
    p.add_argument("--tian", default="", help="comma-separated Tian subjects")
    p.add_argument("--sim", type=int, default=0, help="simulated b-scans")
    p.add_argument("--truth", type=int, default=0, help="simulated b-scans with a known conditional mean")
    p.add_argument("--duke", default="", help="Duke split (train, val or test)")
    p.add_argument("--column-step", type=int, default=1, help="Duke: keep every K-th A-scan (coarser sampling)")
    p.add_argument("--frames", default="1", help="Duke: comma-separated frame counts averaged (1 = single frames)")
    p.add_argument("--bilateral", default="", metavar="PX:RANGE,...",
                   help="also each sigma followed by an edge-preserving (bilateral) smoothing across A-scans: "
                        "spatial sigma in px and intensity sigma in [0, 1] units (measured, not shipped)")
    p.add_argument("--wiener", default="", metavar="PX:C,...",
                   help="also each sigma followed by a local Wiener correction towards the raw b-scan: window "
                        "in px, noise level as a multiple of the residual's median local mean square (measured, "
                        "not shipped)")
    p.add_argument("--show", type=Path, default=None, metavar="DIR",
                   help="pictures of one b-scan per real source: raw | each method, residuals below")
    p.add_argument("--data", type=Path, default=SHARED, help="the shared folder (with data/ and tools/)")
    a = p.parse_args()
    from napari_hdcyclegan.engine import get_denoiser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        den = get_denoiser(a.weights, "cpu")
    den.precision = "fp32"
    print(f"{den.name} (shipped lateral_sigma {den.config.lateral_sigma})")

    specs = [[float(v) for v in spec.split(":")] for spec in a.bilateral.split(",") if spec]
    if any(len(e) != 2 or e[0] < 0 or not 0 <= e[1] <= 1 for e in specs):
        raise SystemExit(f"--bilateral {a.bilateral}: expected PX:RANGE pairs, px >= 0 and RANGE in [0, 1]")
    wiener = [[float(v) for v in spec.split(":")] for spec in a.wiener.split(",") if spec]
    if any(len(e) != 2 or e[0] <= 0 or e[1] <= 0 for e in wiener):
        raise SystemExit(f"--wiener {a.wiener}: expected PX:C pairs, both > 0")
    fns = sweep(den, [float(s) for s in a.sigmas.split(",")], [(px, rng) for px, rng in specs],
                [(px, c) for px, c in wiener])
    if a.tian:
        if not (a.data / "tools" / "real_scan_check.py").is_file():
            raise SystemExit(f"{a.data}: shared folder with tools/real_scan_check.py not found (pass --data)")
        tian(fns, [int(v) for v in a.tian.split(",")], a.data)
    if a.sim:
        sim(fns, a.sim)
    if a.truth:
        truth(fns, a.truth)
    if a.duke:
        duke(fns, a.duke, a.column_step, tuple(int(k) for k in a.frames.split(",")))
    if a.show:
        show(fns, a.show, a.data)


if __name__ == "__main__":
    main()
