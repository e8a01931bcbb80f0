"""Does a raised background change what a model does? Its output with and without ``floor_percentile``.

A model whose ``normalisation`` has ``floor_percentile`` (``adjustments.floor_offset``) takes each b-scan's
value at that percentile off before the generator and adds it back after: a scan exported with a grey
background then reaches the network as one with a black background, as its training scans had. This
script scores the model as shipped against the same model without that step (``--percentile`` tries
another value):

* ``sim``: random simulated scans (``simulate.randomized.random_params``: frames 1-100, display floor
  -0.12..0.3 of the range, grain, geometry, ...) that ``auto`` sends to the model, PSNR against the mean of
  eight more acquisitions of the same scene (``truth_pair``), a row per scan whose background was taken
  down and a summary over all of them;
* ``duke-averages``: the registered Duke / Fang 2013 averages (a grey background; ``auto`` sends them to
  ``spectralis-real``), split PSNR (``noise_measures.split_psnr``) of each, raw and both ways.

Asserts nothing. The numbers in the README ("A raised background")::

    python scripts/floor_check.py sim --seeds 0-99
    python scripts/floor_check.py duke-averages
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_hdcyclegan.denoiser import Denoiser

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Denoise = Callable[[np.ndarray], np.ndarray]


def variants(weights: str, percentile: float | None = None) -> tuple[Denoiser, Denoiser]:
    """(with, without): the model's denoiser with ``floor_percentile`` (its own, or ``percentile``) and without."""
    from napari_hdcyclegan.engine import get_denoiser

    shipped = get_denoiser(weights, "cpu")
    norm = dict(shipped.config.normalisation or {})
    with_floor, without = copy.copy(shipped), copy.copy(shipped)
    if percentile is not None:
        with_floor.config = dataclasses.replace(shipped.config, normalisation={**norm, "floor_percentile": percentile})
    without.config = dataclasses.replace(shipped.config, normalisation={k: v for k, v in norm.items()
                                                                        if k != "floor_percentile"})
    if not with_floor.normalisation.get("floor_percentile"):
        raise SystemExit(f"{weights} has no floor_percentile: pass --percentile")
    return with_floor, without


def truth_psnr(output: np.ndarray, truth: np.ndarray) -> float:
    """PSNR (dB) against ``truth``, its peak the truth's 0.5-99.5 percentile range."""
    peak = float(np.percentile(truth, 99.5) - np.percentile(truth, 0.5))
    return float(10 * np.log10(peak**2 / np.mean((np.asarray(output, np.float64) - truth) ** 2)))


def sim_rows(seeds: list[int], with_floor: Denoiser, without: Denoiser, model: str) -> list[dict]:
    """One row per random simulated scan that ``auto`` sends to ``model``: PSNR raw / without / with."""
    from napari_hdcyclegan.model.choice import choose_model
    from napari_hdcyclegan.simulate.randomized import random_params, truth_pair

    rows = []
    for seed in seeds:
        p = random_params(seed)
        noisy, truth = truth_pair(p, k=8, seed=seed)
        if choose_model(noisy).weights != model:
            continue
        offset = with_floor.input_adjustments(noisy)["floor_offsets"][0]
        plain = truth_psnr(without.denoise(noisy), truth)
        floor = truth_psnr(with_floor.denoise(noisy), truth) if offset > 0 else plain
        rows.append({"seed": seed, "frames": p.hn_frames, "display_floor": p.display_floor, "offset": offset,
                     "raw": truth_psnr(noisy, truth), "without": plain, "with": floor})
    return rows


def summary(rows: list[dict]) -> str:
    """Mean and extremes of the change over ``rows`` (dB), and how many scans moved by over 0.05 dB."""
    d = np.array([r["with"] - r["without"] for r in rows])
    if not d.size:
        return "no scans"
    return (f"{len(rows)} scans, {int((d != 0).sum())} changed by the floor step; with - without: mean "
            f"{d.mean():+.3f} dB, min {d.min():+.2f}, max {d.max():+.2f}; {int((d > 0.05).sum())} up and "
            f"{int((d < -0.05).sum())} down by over 0.05 dB")


def duke_average_rows(with_floor: Denoiser, without: Denoiser, root: str | None = None) -> list[dict]:
    """Split PSNR of each registered Duke average (8-bit), raw and denoised both ways."""
    from napari_hdcyclegan.noise_measures import split_psnr
    from training.frames import registered_duke_pairs

    def scored(den: Denoiser) -> Denoise:
        return lambda half: den.denoise(np.rint(half).astype(np.uint8)).astype(np.float64)

    rows, seen = [], set()
    for split in ("train", "val", "test"):
        for name, _, average in registered_duke_pairs(split, root):
            if id(average) in seen:  # every frame of a subject shares its average
                continue
            seen.add(id(average))
            image = average.astype(np.float64)
            rows.append({"name": f"{split} {name.split('/')[0]}",
                         "offset": with_floor.input_adjustments(average)["floor_offsets"][0],
                         "raw": split_psnr(image, data_range=255.0),
                         "without": split_psnr(image, scored(without), data_range=255.0),
                         "with": split_psnr(image, scored(with_floor), data_range=255.0)})
    return rows


def seed_range(text: str) -> list[int]:
    """``0-99`` or ``3,5,8``."""
    if "-" in text:
        a, b = (int(v) for v in text.split("-"))
        return list(range(a, b + 1))
    return [int(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("sim", "duke-averages"))
    p.add_argument("--weights", default="spectralis-real")
    p.add_argument("--percentile", type=float, help="floor_percentile to try (default: the model's own)")
    p.add_argument("--seeds", type=seed_range, default=seed_range("0-99"), help="sim: e.g. 0-99 or 3,5,8")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with_floor, without = variants(a.weights, a.percentile)
    q = with_floor.normalisation["floor_percentile"]
    if a.what == "sim":
        rows = sim_rows(a.seeds, with_floor, without, Path(a.weights).name)
        print(f"| seed | frames | display floor | offset | raw | without | with floor_percentile {q:g} |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            if r["offset"] > 0:
                print(f"| {r['seed']} | {r['frames']} | {r['display_floor']:.2f} | {r['offset']:.3f} | {r['raw']:.2f} "
                      f"| {r['without']:.2f} | {r['with']:.2f} |")
    else:
        rows = duke_average_rows(with_floor, without)
        print(f"| average | offset | raw | without | with floor_percentile {q:g} |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['offset']:.3f} | {r['raw']:.2f} | {r['without']:.2f} | {r['with']:.2f} |")
        print(f"| mean | | {np.mean([r['raw'] for r in rows]):.3f} | {np.mean([r['without'] for r in rows]):.3f} "
              f"| {np.mean([r['with'] for r in rows]):.3f} |")
    print(summary(rows))


if __name__ == "__main__":
    main()
