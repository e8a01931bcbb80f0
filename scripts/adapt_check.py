"""Adaptation to one scan (``denoise --adapt``) measured on real scans, on columns it never trained on.

Real scans without a clean reference (the Tian subject-5 b-scans no shipped model trained on, the
``.vol`` scans, the single noisy scans): the model is adapted on the LEFT half of the b-scan only
(:func:`napari_hdcyclegan.adapt.iter_adapt`, which itself keeps its right third out for the decision)
and the split PSNR is measured on the RIGHT half, for the base model, the adaptation's result (the
base model where it was not kept) and, unless ``--no-bm3d``, BM3D (sigma = 5 x skimage's estimate).
Duke pairs (``--duke SPLIT``): adapted on the whole noisy frame, PSNR / SSIM against the average.
``--residuals 0,2``: what the adapted models (one per consistency weight, adapted on the whole scan and
shown whether or not the guard would keep them) leave in the residual, beside the base model and BM3D:
:func:`napari_hdcyclegan.profiles.residual_edge_correlation` and the layer profile change.
``--sim N``: N simulated maculae with a known conditional mean (``simulate.truth_pairs``, alternating
speckle shared between neighbouring A-scans and independent A-scans), adapted on the whole scan even
where A-scans share speckle: the held-out split PSNR the decision uses beside the PSNR to the truth.

    python scripts/adapt_check.py [--weights auto] [--steps 60] [--consistency 2] [--duke test [--grain 0.9
                                  --frames 2]] [--no-bm3d]
                                  [--only NAME,...] [--residuals 0,2 [--show DIR]] [--sim 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def real_scans(root: Path) -> list[tuple[str, np.ndarray]]:
    """(name, [0, 1] float32 b-scan) of every noisy real scan without a reference."""
    from training.real import single_noisy_scans, tian_scans, vendor_scans

    scans = tian_scans(root, (5,))[::3] + vendor_scans(root) + single_noisy_scans(root)
    return [(n, np.asarray(im, np.float32) / (255.0 if im.max() > 1.5 else 1.0)) for n, im in scans]


def right_half_scores(weights: str, steps: int, image: np.ndarray, bm3d: bool,
                      consistency: float, min_gain: float) -> dict[str, float]:
    """Split PSNR on the right half: raw, base, adapted (on the left half), BM3D x5."""
    from napari_hdcyclegan import metrics
    from napari_hdcyclegan.adapt import iter_adapt
    from napari_hdcyclegan.engine import choose_denoiser
    from napari_hdcyclegan.progress import drive

    c = (image.shape[1] // 2) // 2 * 2
    left, right = image[:, :c], image[:, c:]
    base, _ = choose_denoiser(weights, "cpu", data=image)
    adapted, record = drive(iter_adapt(base, left, steps, consistency=consistency, min_gain=min_gain))
    scores = {"raw": metrics.split_psnr(right), "base": metrics.split_psnr(right, base.denoise),
              "adapted": metrics.split_psnr(right, adapted.denoise), "kept": float(record.kept)}
    if bm3d:
        from napari_hdcyclegan.baselines import denoise_bm3d

        scores["bm3d x5"] = metrics.split_psnr(right, lambda h: denoise_bm3d(h, sigma_scale=5.0))
    print(f"  {base.name}: {record.describe(base.name)}", flush=True)
    return scores


def sim_scores(weights: str, steps: int, n: int, consistency: float) -> None:
    """Held-out split PSNR before / after adapting, and PSNR to the truth, on simulated maculae."""
    from napari_hdcyclegan import metrics, simulate
    from napari_hdcyclegan.adapt import iter_adapt
    from napari_hdcyclegan.engine import choose_denoiser
    from napari_hdcyclegan.progress import drive

    print("| scan | lateral noise ratio | held-out split PSNR | PSNR to the truth |\n|---|---|---|---|")
    for i, (scan, truth) in enumerate(simulate.truth_pairs(n, k=32, seed=7000)):
        base, _ = choose_denoiser(weights, "cpu", data=scan)
        adapted, r = drive(iter_adapt(base, scan, steps, consistency=consistency, min_gain=-np.inf,
                                      shared_speckle=True))
        b, a = (metrics.psnr(truth, m.denoise(scan), data_range=1.0) for m in (base, adapted))
        regime = list(simulate.SPECKLE_REGIMES)[i % len(simulate.SPECKLE_REGIMES)]
        print(f"| {regime} {i} | {metrics.lateral_noise_ratio(scan):.2f} | {r.before_db:.2f} -> {r.after_db:.2f} "
              f"({r.after_db - r.before_db:+.2f}) | {b:.2f} -> {a:.2f} ({a - b:+.2f}) |", flush=True)


def duke_scores(weights: str, steps: int, split: str, consistency: float, min_gain: float,
                only: list[str] | None, grain: float | None = None, frames: int = 1) -> None:
    """PSNR / SSIM against the Duke averages, base and adapted; ``grain``: every registered frame with its
    noise correlated along the A-scans and divided by sqrt(``frames``), as ``training.evaluate --grain``."""
    from napari_hdcyclegan import metrics
    from napari_hdcyclegan.adapt import iter_adapt
    from napari_hdcyclegan.engine import choose_denoiser
    from napari_hdcyclegan.progress import drive
    from training.evaluate import duke_pairs
    from training.frames import synthetic_mean_pairs

    rows = []
    pairs = duke_pairs(split, None) if grain is None else synthetic_mean_pairs(split, (frames,), None, grain)
    for name, hn, ref in pairs:
        if only and name not in only:
            continue
        base, _ = choose_denoiser(weights, "cpu", data=hn)
        adapted, record = drive(iter_adapt(base, hn, steps, consistency=consistency, min_gain=min_gain))
        s = metrics.score_methods({"base": base.denoise(hn), "adapted": adapted.denoise(hn)}, ref, align=True)
        rows.append([s["base"]["PSNR"], s["base"]["SSIM"], s["adapted"]["PSNR"], s["adapted"]["SSIM"]])
        print(f"{name} ({base.name}): base {rows[-1][0]:.2f} / {rows[-1][1]:.3f}, adapted {rows[-1][2]:.2f} / "
              f"{rows[-1][3]:.3f}; {record.describe(base.name)}", flush=True)
    m = np.mean(rows, axis=0)
    print(f"mean of {len(rows)}: base {m[0]:.2f} / {m[1]:.3f}, adapted {m[2]:.2f} / {m[3]:.3f}")


def residual_rows(weights: str, steps: int, name: str, image: np.ndarray, consistencies: list[float],
                  bm3d: bool) -> dict[str, np.ndarray]:
    """Residual edge correlation and profile change (grey levels) of base, adapted and BM3D outputs;
    returns the outputs by method."""
    from napari_hdcyclegan.adapt import iter_adapt
    from napari_hdcyclegan.engine import choose_denoiser
    from napari_hdcyclegan.profiles import mean_profile_change, residual_edge_correlation
    from napari_hdcyclegan.progress import drive

    base, _ = choose_denoiser(weights, "cpu", data=image)
    outputs = {base.name: base.denoise(image)}
    for g in consistencies:
        adapted, record = drive(iter_adapt(base, image, steps, consistency=g, min_gain=-np.inf, shared_speckle=True))
        outputs[f"adapted, consistency {g:g}"] = adapted.denoise(image)
        print(f"  consistency {g:g}: held-out split PSNR {record.before_db:.2f} -> {record.after_db:.2f}", flush=True)
    if bm3d:
        from napari_hdcyclegan.baselines import denoise_bm3d

        outputs["bm3d x5"] = denoise_bm3d(image, sigma_scale=5.0)
    for method, out in outputs.items():
        print(f"| {name} | {method} | {residual_edge_correlation(out, image):+.3f} | "
              f"{255 * mean_profile_change(out, image):.2f} |", flush=True)
    return outputs


def residual_picture(path: Path, name: str, image: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    """raw | each output above, each residual (input - output, smoothed 1.5 x 4 px, +-0.05) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.ndimage import gaussian_filter

    n = 1 + len(outputs)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 6.0), squeeze=False)
    axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=1, aspect="auto")
    axes[0, 0].set_title(f"{name}: raw", fontsize=8)
    axes[1, 0].axis("off")
    for c, (method, out) in enumerate(outputs.items(), 1):
        axes[0, c].imshow(out, cmap="gray", vmin=0, vmax=1, aspect="auto")
        axes[0, c].set_title(method, fontsize=8)
        axes[1, c].imshow(gaussian_filter(image.astype(np.float64) - out, (1.5, 4)), cmap="RdBu_r", vmin=-0.05,
                          vmax=0.05, aspect="auto")
        axes[1, c].set_title("residual, smoothed 1.5 x 4 px (red: output darker)", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="auto")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--consistency", type=float, default=None,
                   help="weight of the Neighbor2Neighbor term (default: adapt.CONSISTENCY; 0: plain halves)")
    p.add_argument("--min-gain", type=float, default=None,
                   help="dB the held-out score must rise by (default: adapt.MIN_GAIN_DB; -99 shows what a "
                        "refused adaptation does)")
    p.add_argument("--duke", metavar="SPLIT", help="score Duke pairs of this split instead")
    p.add_argument("--grain", type=float, metavar="PX",
                   help="with --duke: every registered frame with its noise correlated along the A-scans by a "
                        "Gaussian of PX pixels and divided by sqrt(--frames) (training.evaluate --grain)")
    p.add_argument("--frames", type=int, default=1, help="with --grain: the noise divided by sqrt(FRAMES)")
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--only", help="comma-separated scan names (Duke: e.g. S05/test)")
    p.add_argument("--data", type=Path, help="the shared data folder")
    p.add_argument("--residuals", metavar="G,...", help="residual check of adaptations with these consistency weights")
    p.add_argument("--show", type=Path, metavar="DIR", help="with --residuals: a picture per scan in DIR")
    p.add_argument("--sim", type=int, metavar="N", help="score N simulated scans against their truth instead")
    a = p.parse_args(argv)
    if a.show and not a.residuals:
        p.error("--show draws the residual check: give --residuals too")
    from training.frames import MAX_GRAIN_PX

    if a.grain is not None and (not a.duke or not 0 < a.grain <= MAX_GRAIN_PX or a.frames < 1):
        p.error(f"--grain needs --duke SPLIT, 0 < PX <= {MAX_GRAIN_PX:g} and --frames >= 1")
    import torch

    from napari_hdcyclegan.adapt import CONSISTENCY, MIN_GAIN_DB

    consistency = CONSISTENCY if a.consistency is None else a.consistency
    min_gain = MIN_GAIN_DB if a.min_gain is None else a.min_gain
    torch.manual_seed(0)
    if a.sim:
        sim_scores(a.weights, a.steps, a.sim, consistency)
        return 0
    if a.duke:
        duke_scores(a.weights, a.steps, a.duke, consistency, min_gain, a.only.split(",") if a.only else None,
                    a.grain, a.frames)
        return 0
    from training.real import default_shared_data

    scans = real_scans(a.data or default_shared_data())
    if a.only:
        scans = [s for s in scans if s[0] in a.only.split(",")]
    if a.residuals:
        print("| scan | method | residual-edge correlation | profile change |\n|---|---|---|---|")
        for name, image in scans:
            outputs = residual_rows(a.weights, a.steps, name, image, [float(g) for g in a.residuals.split(",")],
                                    not a.no_bm3d)
            if a.show:
                a.show.mkdir(parents=True, exist_ok=True)
                residual_picture(a.show / f"{name.replace('/', '_')}.png", name, image, outputs)
        return 0
    table = []
    for name, image in scans:
        print(name, flush=True)
        table.append((name, right_half_scores(a.weights, a.steps, image, not a.no_bm3d, consistency, min_gain)))
    cols = [k for k in table[0][1] if k != "kept"]
    print("| scan | " + " | ".join(cols) + " | kept |\n|---|" + "---|" * (len(cols) + 1))
    for name, s in table:
        print(f"| {name} | " + " | ".join(f"{s[k]:.2f}" for k in cols) + f" | {'yes' if s['kept'] else 'no'} |")
    means = {k: np.mean([s[k] for _, s in table]) for k in cols}
    print("| mean | " + " | ".join(f"{means[k]:.2f}" for k in cols) + " | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
