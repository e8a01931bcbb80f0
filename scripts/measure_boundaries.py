"""Measure the ILM/RPE boundary error of the feature-map skeleton against known boundaries.

Datasets: simulated HN b-scans (truth from the simulator; seeds distinct from the calibration
seeds) and the real Heidelberg Spectralis circle scan shipped with the package (vendor ILM and BM,
compared where the vendor marks both). Channel: the model's ``boundary_channel`` or, when the
config has none, :func:`calibrate_boundary_channel` on simulated b-scans (seeds 0..n-1). A second
row for the real scan uses the channel that fits the vendor lines best (an upper bound, labelled
"oracle": it is tuned on the very scan it is scored on).

    python scripts/measure_boundaries.py [--weights NAME_OR_DIR] [--n-sim 4] [--shape 496 512]

Prints a table of mean absolute error (px) and coverage (% of A-scans with a detection).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from napari_hdcyclegan import boundaries as bd

VOL = Path(__file__).resolve().parents[1] / "napari_hdcyclegan" / "data" / "heidelberg_circle.vol"


def score(found: dict, truth: dict) -> dict[str, float]:
    """MAE and coverage over all b-scans, on A-scans where the truth has both lines."""
    ilm_t = np.asarray(truth["ILM"], float).ravel()
    rpe_t = np.asarray(truth["RPE"], float).ravel()
    known = np.isfinite(ilm_t) & np.isfinite(rpe_t)
    out = {}
    for name, t in (("ILM", ilm_t), ("RPE", rpe_t)):
        f = np.asarray(found[name], float).ravel()
        both = known & np.isfinite(f)
        out[name] = float(np.mean(np.abs(f[both] - t[both]))) if both.any() else float("nan")
        out[f"{name}_cov"] = 100.0 * both.sum() / max(known.sum(), 1)
    return out


def row(table: list, dataset: str, channel: str, refine: bool, s: dict) -> None:
    """Append one formatted row."""
    table.append(f"| {dataset:<28} | {channel:<22} | {'yes' if refine else 'no ':<6} | {s['ILM']:7.2f} | "
                 f"{s['RPE']:7.2f} | {s['ILM_cov']:5.1f} / {s['RPE_cov']:5.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="model name or directory (default: engine default)")
    parser.add_argument("--n-sim", type=int, default=4, help="simulated b-scans to score")
    parser.add_argument("--seed", type=int, default=100, help="first simulator seed scored")
    parser.add_argument("--shape", type=int, nargs=2, default=(496, 512))
    parser.add_argument("--vol", type=Path, default=VOL, help="Heidelberg .vol with vendor ILM/BM")
    args = parser.parse_args()

    from napari_hdcyclegan.engine import DEFAULT_MODEL, get_denoiser
    from napari_hdcyclegan.io import read_oct
    from napari_hdcyclegan.simulate import simulate_bscan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        denoiser = get_denoiser(args.weights or DEFAULT_MODEL, "cpu")
    t0 = time.time()
    chosen = bd.boundary_channel(denoiser.config)
    if chosen is None:
        choice = bd.calibrate_boundary_channel(denoiser, n=4, seed=0, shape=tuple(args.shape))
        chosen = (choice["stage"], choice["channel"])
        print(f"calibrated in {time.time() - t0:.0f} s: {choice}")
    else:
        print(f"boundary_channel from config: {denoiser.config.boundary_channel}")
    stage, channel = chosen
    label = f"{stage}/{channel}"
    print(f"model: {denoiser.name} (trained={denoiser.trained})")
    use_denoised = bool(denoiser.trained)

    table = ["| dataset                      | channel                | refine | ILM MAE | RPE MAE | cov. ILM / RPE % |",
             "|------------------------------|------------------------|--------|---------|---------|------------------|"]
    sims = [simulate_bscan(seed=args.seed + i, shape=tuple(args.shape)) for i in range(args.n_sim)]
    hn = np.stack([s.hn for s in sims])
    truth = {k: np.stack([s.boundaries[k] for s in sims]) for k in bd.BOUNDARY_NAMES}
    for refine in (False, True):
        found = bd.model_boundaries(hn, denoiser, stage, channel, use_denoised=use_denoised, refine=refine)
        row(table, f"simulated HN x{args.n_sim} {tuple(args.shape)}", label, refine, score(found, truth))

    if args.vol.is_file():
        img = read_oct(args.vol)  # log display transform applied (linear .vol intensities)
        vendor = {"ILM": img.boundaries["ILM"], "RPE": img.boundaries["RPE"]}  # RPE = vendor BM
        name = f"Spectralis .vol {img.data.shape[-2]}x{img.data.shape[-1]}"
        for refine in (False, True):
            found = bd.model_boundaries(img.data, denoiser, stage, channel, use_denoised=use_denoised,
                                        refine=refine)
            row(table, name, label, refine, score(found, vendor))
        bscan = img.data[0]
        maps = {s: denoiser.feature_maps(bscan, s) for s in bd.EARLY_STAGES}
        ref = {k: vendor[k][0] for k in bd.BOUNDARY_NAMES}
        ref["RPE"] = np.where(np.isfinite(ref["ILM"]), ref["RPE"], np.nan)  # vendor's valid span
        best = bd.choose_channel(maps, denoiser.denoise(bscan) if use_denoised else bscan, ref)
        found = bd.model_boundaries(img.data, denoiser, best["stage"], best["channel"],
                                    use_denoised=use_denoised)
        row(table, name, f"{best['stage']}/{best['channel']} (oracle)", True, score(found, vendor))
    else:
        print(f"(no {args.vol}: real-scan rows skipped)")
    print("\n".join(table))
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
