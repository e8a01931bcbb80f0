"""The shipped default (`auto`) on real scans: the targets it meets stay met.

No other test runs the shipped weights on real scans and scores them, so a change of the inference path
(intensity mapping, routing, precision, smoothing) could lose decibels and stay green. These tests score
`auto` with the shared tool's measures (``../shared/tools/real_scan_check.py``) and the Duke evaluation,
and hold each figure to the tuned BM3D figure it beats or matches in the README (BM3D itself is too slow
to run here: its figures are constants, each with the command that measured it). They skip when the
shared real data is absent.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
pytestmark = pytest.mark.skipif(not (SHARED / "tools" / "real_scan_check.py").is_file(),
                                reason="needs the shared real data and tools (../shared)")


@pytest.fixture(scope="module")
def tool():
    """The shared tool's measures (split PSNR, layer bands, layer CNR), as the README's tables use them."""
    sys.path.insert(0, str(SHARED / "tools"))
    try:
        import real_scan_check
    finally:
        sys.path.remove(str(SHARED / "tools"))
    return real_scan_check


@pytest.fixture(scope="module")
def auto():
    """`auto`'s denoising function: the model chosen per b-scan, as the command line does."""
    from napari_hdcyclegan import engine

    return lambda x: engine.get_denoiser("auto", "cpu", data=x).denoise(x)


def test_held_back_tian_subject_beats_bm3d_split_psnr_and_matches_its_layer_cnr(tool, auto) -> None:
    # BM3D x5 on subject 5's ten b-scans: split PSNR 27.03 dB (`python ../shared/tools/real_scan_check.py
    # denoise --subjects 5 --cache C`; README, headline table), layer CNR 2.693: the mean of the per-b-scan
    # figures that command keeps in its cache C (it prints 2.69), which `python scripts/layer_cnr_gap.py
    # --cache C --subjects 5` sets beside the model's (gap +0.000)
    from napari_hdcyclegan.profiles import residual_edge_correlation

    scans = tool.load_subject(str(SHARED / "data" / "layers" / "tian2015_octlayers"), 5)
    split, cnr, kept, edges = [], [], [], []
    for _, im, lab in scans:
        even, odd = tool.halves(im)
        split.append(tool.split_psnr(auto(even), auto(odd), im))
        out = auto(im)
        c_out, d_out = tool.layer_stats(out, tool.bands_of(lab, im.shape[0]))
        c_raw, d_raw = tool.layer_stats(im, tool.bands_of(lab, im.shape[0]))
        cnr.append(np.mean(c_out))
        kept.extend(np.array(d_out) / np.maximum(np.array(d_raw), 1e-6))
        edges.append(residual_edge_correlation(out / 255.0, im / 255.0))
    assert len(scans) == 10
    assert np.mean(split) > 27.03 + 0.3, np.mean(split)  # shipped: 27.48
    assert np.mean(cnr) > 2.693 - 0.02, np.mean(cnr)  # shipped: 2.69, level with BM3D (not above: issue open)
    assert np.median(kept) >= 0.95
    # the residual is noise, not the layers' edges (a model that blurs or paints them reads 0.2-0.4; README,
    # the real-scan report's third table)
    assert np.mean(edges) < 0.1, edges


def test_noisy_vol_scan_beats_bm3d_split_psnr(auto) -> None:
    from napari_hdcyclegan import metrics
    from training.real import vendor_scans

    scans = dict(vendor_scans(SHARED / "data"))
    unit = np.asarray(scans["vol/valid/0"], np.float32)  # log display, [0, 1]
    # BM3D x5: 23.59 dB, raw 21.34 (`python scripts/vol_layer_check.py`; README, the `.vol` table)
    assert metrics.split_psnr(unit) < 21.5
    assert metrics.split_psnr(unit, auto) > 23.59  # shipped: 23.74


def _duke_test_scores(out: Path, *flags: str, split: str = "test") -> dict[str, str]:
    """`auto`'s row of ``training.evaluate`` on a Duke split (the test split unless told; with ``flags``)."""
    from training.evaluate import main

    assert main(["--data", "duke", "--split", split, "--weights", "auto", "--methods", "model", "--duke-root",
                 str(SHARED / "data" / "paired"), "--out", str(out), "--examples", "1", *flags]) == 0
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO((out / "table.csv").read_text()))}
    return rows["HDcycleGAN"]


def test_duke_test_pairs_beat_bm3d_on_psnr_ssim_and_cnr(tmp_path: Path) -> None:
    model = _duke_test_scores(tmp_path)
    # tuned BM3D on the four test b-scans: 28.03 dB / 0.678 / MSR 28.53 / CNR 6.54 (`python -m
    # training.evaluate --data duke --split test --methods model bm3d`; README, headline table)
    assert float(model["PSNR_mean"]) > 28.03 and float(model["SSIM_mean"]) > 0.678  # shipped: 28.28 / 0.683
    assert float(model["CNR_mean"]) > 6.54  # shipped: 6.64 (MSR 28.45 is level with BM3D's, not above)


@pytest.mark.parametrize(("frames", "bm3d_psnr", "bm3d_ssim"), [(2, 28.24, 0.679), (3, 28.09, 0.680)])
def test_few_frame_bioptigen_means_stay_level_with_bm3d(tmp_path: Path, frames: int, bm3d_psnr: float,
                                                      bm3d_ssim: float) -> None:
    model = _duke_test_scores(tmp_path, "--frames", str(frames))
    # tuned BM3D on the means of the first 2 / 3 registered frames of S06-S09 (`python -m training.evaluate
    # --data duke --split test --frames K --weights auto --methods model bm3d`; README, the few-frame table);
    # `auto` (bioptigen-averaged) is level with it there (shipped: 28.18 / 0.676 and 28.08 / 0.680), not above;
    # at 2 frames the margin is 0.04 dB / 0.0017: a retrained few-frame model has to keep that level
    assert float(model["PSNR_mean"]) > bm3d_psnr - 0.1 and float(model["SSIM_mean"]) > bm3d_ssim - 0.005


def test_grey_background_correlated_grain_scans_stay_near_bm3d(tmp_path: Path) -> None:
    model = _duke_test_scores(tmp_path, "--grain", "0.9", "--frames", "8", split="val")
    # Duke validation frames with Spectralis-like axial grain, noise / sqrt(8), against their averages; `auto`
    # sends them to spectralis-real, whose floor step takes their grey background down (README, "A raised
    # background"): shipped 30.82 dB / 0.704, 30.25 / 0.650 without the step; BM3D x7.5 31.06 / 0.716 (`python -m
    # training.evaluate --data duke --split val --grain 0.9 --frames 8 --methods model bm3d --bm3d-scale 7.5`)
    assert float(model["PSNR_mean"]) > 31.06 - 0.35 and float(model["SSIM_mean"]) > 0.716 - 0.02
