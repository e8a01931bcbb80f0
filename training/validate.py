"""Validation during training: the model and BM3D on the same held-back pairs (BM3D cached), split PSNR on
held-back real scans, and PSNR against the known truth of simulated scans (``--val-sim``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from napari_hdcyclegan.model.networks import Generator, lateral_smooth, run_generator

from .config import FitConfig
from .csvlog import append_csv
from .real import split_psnr
from .sources import TrainingData, ValItem

FIELDS = ("step", "score", "psnr", "ssim", "msr", "cnr", "bm3d_psnr", "bm3d_ssim", "bm3d_msr", "bm3d_cnr",
          "raw_psnr", "raw_ssim", "split_psnr", "raw_split_psnr", "profile_change", "bm3d_profile_change",
          "sim_psnr", "raw_sim_psnr")
SIM_SEED = 90_000  # simulate.truth_pairs seeds for --val-sim: apart from the training simulator's


def _scores(image: np.ndarray, item: ValItem) -> dict[str, float]:
    from napari_hdcyclegan import metrics, profiles

    signal, background = metrics.signal_background_masks(item.reference)
    return {"psnr": metrics.psnr(item.reference, image, data_range=1.0),
            "ssim": metrics.ssim(item.reference, image, data_range=1.0),
            "msr": metrics.msr(image, signal), "cnr": metrics.cnr(image, signal, background),
            # model units: how much the output changes its input's mean layer profile (not in the score)
            "profile_change": profiles.mean_profile_change(image, item.noisy, item.reference)}


def _mean(rows: list[dict[str, float]], prefix: str = "") -> dict[str, float]:
    return {prefix + k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


class Validator:
    """Scores G_L on the validation pairs; BM3D and raw scores are computed once and cached."""

    def __init__(self, cfg: FitConfig, data: TrainingData, out: Path) -> None:
        self.cfg, self.items, self.out = cfg, data.val, out
        self.split_items = data.val_split
        self.reference_scores = self._reference_scores() if self.items else {}
        if self.split_items:
            self.reference_scores["raw_split_psnr"] = float(np.mean(
                [split_psnr(lambda a: a, im) for _, im in self.split_items]))
        self.sim_items = []
        if cfg.val_sim > 0:
            from napari_hdcyclegan.simulate import truth_pairs

            self.sim_items = truth_pairs(cfg.val_sim, seed=SIM_SEED)
            self.reference_scores["raw_sim_psnr"] = self._sim_psnr(lambda a: a)

    def _sim_psnr(self, denoise: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean PSNR of ``denoise`` on the simulated scans against their conditional means.

        Offset-free, as ``scripts/split_ceiling.py`` and split PSNR: a uniform grey-level shift says
        nothing about the noise removed.
        """
        from napari_hdcyclegan import metrics

        return float(np.mean([metrics.offset_free_psnr(denoise(scan) - truth) for scan, truth in self.sim_items]))

    def _reference_scores(self) -> dict[str, float]:
        raw = _mean([_scores(it.noisy, it) for it in self.items], "raw_")
        if not self.cfg.val_bm3d:
            return raw
        key = hashlib.sha1(b"".join(it.noisy.tobytes() for it in self.items)).hexdigest()[:12]
        cache = self.out / f"val_bm3d_{key}.npz"
        if cache.exists():
            with np.load(cache) as f:  # one array per pair (older caches: one stacked "bm3d" array)
                outs = list(f["bm3d"]) if "bm3d" in f else [f[f"arr_{i}"] for i in range(len(self.items))]
        else:
            from napari_hdcyclegan.baselines import MissingExtraError, denoise_bm3d

            try:
                outs = [denoise_bm3d(it.noisy) for it in self.items]
            except MissingExtraError as exc:
                print(f"validation without BM3D: {exc}")
                return raw
            np.savez_compressed(cache, *outs)  # pairs may differ in shape
        return {**raw, **_mean([_scores(o, it) for o, it in zip(outs, self.items)], "bm3d_")}

    @torch.inference_mode()
    def denoise(self, gen: Generator, image: np.ndarray) -> np.ndarray:
        device = next(gen.parameters()).device
        was_training = gen.training
        gen.eval()
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
        y = lateral_smooth(run_generator(gen, x).float(), self.cfg.lateral_sigma).clamp_(0, 1)[0, 0].cpu().numpy()
        gen.train(was_training)
        return y

    def run(self, gen: Generator, step: int) -> dict[str, float]:
        """Mean scores of ``gen`` on the validation pairs; appended to ``OUT/val.csv``."""
        rows = [_scores(self.denoise(gen, it.noisy), it) for it in self.items]
        scores = {"step": step, **_mean(rows), **self.reference_scores}
        # the checkpoint-selection criterion
        scores["score"] = scores["psnr"] + 10 * scores["ssim"] if rows else 0.0
        if self.split_items:  # real scans without reference: split PSNR counts as much as paired PSNR
            scores["split_psnr"] = float(np.mean(
                [split_psnr(lambda a: self.denoise(gen, a), im) for _, im in self.split_items]))
            if self.cfg.select_on == "split" or not rows:
                scores["score"] = scores["split_psnr"]
            elif self.cfg.select_on == "all":
                scores["score"] += scores["split_psnr"]
        if self.sim_items:
            scores["sim_psnr"] = self._sim_psnr(lambda a: self.denoise(gen, a))
            if self.cfg.select_on == "sim" or not (rows or self.split_items):
                scores["score"] = scores["sim_psnr"]
        append_csv(self.out / "val.csv", scores, FIELDS)
        return scores

    @staticmethod
    def format(s: dict[str, float]) -> str:
        parts = []
        if "psnr" in s:
            parts.append(f"PSNR {s['psnr']:.2f} SSIM {s['ssim']:.3f} MSR {s['msr']:.2f} CNR {s['cnr']:.2f}")
            if "bm3d_psnr" in s:
                parts.append(f"BM3D PSNR {s['bm3d_psnr']:.2f} SSIM {s['bm3d_ssim']:.3f}"
                             f" MSR {s['bm3d_msr']:.2f} CNR {s['bm3d_cnr']:.2f}")
            parts.append(f"raw PSNR {s['raw_psnr']:.2f} SSIM {s['raw_ssim']:.3f}")
        if "split_psnr" in s:
            parts.append(f"split PSNR {s['split_psnr']:.2f} (raw {s['raw_split_psnr']:.2f})")
        if "sim_psnr" in s:
            parts.append(f"simulated vs truth {s['sim_psnr']:.2f} (raw {s['raw_sim_psnr']:.2f})")
        return f"val step {s['step']}: " + " | ".join(parts)
