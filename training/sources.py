"""Where training data come from: the simulator (default), folders per domain, Duke pairs, all real data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import FitConfig
from .data import CropSampler, DataError, duke_pairs, duke_targets, read_folder, to_model_units
from .frames import (
    FrameSampler,
    MixedSampler,
    PairSampler,
    duke_frame_stacks,
    frame_average_pairs,
    frame_mean_pairs,
    registered_duke_pairs,
    synthetic_mean_pairs,
)
from .real import SplitSampler, default_shared_data, load_real

#: First seed of --n2n-sim's scenes (plus 1000 x the run's seed): apart from ``--val-sim``'s (90 000 ..) and the
#: scripts' truth scenes (5000 .., 7000 ..).
SIM_PAIR_SEED = 200_000
#: Independent acquisitions drawn per --n2n-sim scene.
SIM_REALISATIONS = 4


@dataclass
class ValItem:
    """One held-back pair: model-unit noisy input, model-unit reference, and the raw noisy image."""

    name: str
    noisy: np.ndarray
    reference: np.ndarray
    raw: np.ndarray


@dataclass
class TrainingData:
    sampler: CropSampler
    description: dict
    val: list[ValItem] = field(default_factory=list)
    split: PairSampler | None = None  # Noise2Noise pairs of real noisy scans (column splits, frame stacks)
    val_split: list[tuple[str, np.ndarray]] = field(default_factory=list)  # scored by split PSNR


def simulated_val(cfg: FitConfig) -> list[ValItem]:
    """Held-back simulated b-scans (seeds never used for training) scored against the clean truth."""
    from napari_hdcyclegan.simulate import cached_pairs

    vol = cached_pairs(cfg.sim_val_n, seed=cfg.seed + 100_000, shape=cfg.sim_shape,
                       hn_frames=cfg.hn_frames, ln_frames=cfg.ln_frames)
    norm = cfg.model_normalisation()
    return [ValItem(f"sim{i}", to_model_units(hn, norm), to_model_units(clean, norm, reference=hn), hn)
            for i, (hn, clean) in enumerate(zip(vol.hn, vol.clean))]


def _sim(cfg: FitConfig) -> TrainingData:
    from napari_hdcyclegan.simulate import cached_pairs

    vol = cached_pairs(cfg.sim_n, seed=cfg.seed, shape=cfg.sim_shape, hn_frames=cfg.hn_frames,
                       ln_frames=cfg.ln_frames, mismatch=cfg.sim_mismatch)
    norm = cfg.model_normalisation()
    hn = [to_model_units(x, norm) for x in vol.hn]
    ln = [to_model_units(x, norm) for x in vol.ln]
    target_src = vol.clean if cfg.paired_target == "clean" else vol.ln
    targets = [to_model_units(t, norm, reference=x) for t, x in zip(target_src, vol.hn)]
    desc = {"source": "simulator", "n_bscans": cfg.sim_n, "shape": list(cfg.sim_shape), "seed": cfg.seed,
            "hn_frames": cfg.hn_frames, "ln_frames": cfg.ln_frames, "mismatch": cfg.sim_mismatch,
            "paired_target": cfg.paired_target}
    return TrainingData(CropSampler(hn, ln, cfg.crop, targets), desc, simulated_val(cfg))


def _duke(cfg: FitConfig) -> TrainingData:
    norm = cfg.model_normalisation()
    root = cfg.duke_root or None
    if cfg.duke_frame_means == "only":
        train = frame_mean_pairs("train", root, every=True)
        train += (synthetic_mean_pairs("train", cfg.synthetic_means(), root, cfg.duke_synthetic_grain)
                  if cfg.duke_synthetic_means else [])
    else:
        train = (registered_duke_pairs("train", root) if cfg.duke_register
                 else duke_pairs("train", root, extra_frames=cfg.duke_extra_frames))
        train += frame_mean_pairs("train", root) if cfg.duke_frame_means == "add" else []
    hn = [to_model_units(n, norm) for _, n, _ in train]
    targets, ln = duke_targets(train, norm, cfg.duke_align)
    val = [ValItem(name, to_model_units(n, norm), to_model_units(a, norm, reference=n), n)
           for name, n, a in _duke_val(cfg.duke_frame_means, root, cfg.duke_val_frames)]
    desc = {"source": "duke_fang2013", "train": sorted({n.split('/')[0] for n, _, _ in train}),
            "n_noisy": len(hn), "n_averaged": len(ln), "val": [v.name for v in val],
            "test_never_used": ["S06", "S07", "S08", "S09"],
            "extra_frames": cfg.duke_extra_frames and cfg.duke_frame_means != "only",
            "references_aligned": cfg.duke_align, "frames_registered": cfg.duke_register,
            "frame_means": cfg.duke_frame_means, "synthetic_means": list(cfg.synthetic_means()),
            "synthetic_grain_px": cfg.duke_synthetic_grain,
            "val_every_frame": cfg.duke_val_frames}
    return TrainingData(CropSampler(hn, ln, cfg.crop, targets), desc, val)


def _duke_val(frame_means: str, root: str | None, every_frame: bool = False
              ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Duke validation pairs: the single frames (``every_frame``: all five of S05), plus or instead of
    few-frame means of S05."""
    means = {"none": (), "add": (2, 3), "only": (2, 3, 5)}[frame_means]
    pairs = registered_duke_pairs if every_frame else duke_pairs
    singles = pairs("val", root) if frame_means != "only" else []
    return singles + [p for k in means for p in frame_average_pairs("val", k, root)]


def _folders(cfg: FitConfig) -> TrainingData:
    parts = cfg.data.split(",")
    if len(parts) != 2:
        raise DataError(f"--data must be sim, duke or HN_DIR,LN_DIR; got {cfg.data!r}")
    norm = cfg.model_normalisation()
    inputs, second = read_folder(parts[0]), read_folder(parts[1])
    hn = [to_model_units(x, norm) for x in inputs]
    targets = None
    if cfg.paired_folders:  # supervised: each target in the units of its input (same mapping)
        if len(inputs) != len(second) or inputs[0].shape != second[0].shape:
            raise DataError(f"--paired-folders: {len(inputs)} inputs of shape {inputs[0].shape} but "
                            f"{len(second)} targets of shape {second[0].shape}")
        targets = [to_model_units(t, norm, reference=x) for x, t in zip(inputs, second)]
        ln = targets
    else:
        ln = [to_model_units(x, norm) for x in second]
    desc = {"source": "folders", "hn": parts[0], "ln": parts[1], "n_hn": len(hn), "n_ln": len(ln),
            "paired": cfg.paired_folders}
    val = folder_val(cfg.val_pairs, norm) if cfg.val_pairs else simulated_val(cfg) if cfg.sim_val_n else []
    return TrainingData(CropSampler(hn, ln, cfg.crop, targets), desc, val)


def folder_val(spec: str, norm: dict) -> list[ValItem]:
    """Paired validation b-scans from ``NOISY_DIR,REFERENCE_DIR``: same count and shapes, name order."""
    parts = spec.split(",")
    if len(parts) != 2:
        raise DataError(f"--val-pairs must be NOISY_DIR,REFERENCE_DIR; got {spec!r}")
    noisy, ref = read_folder(parts[0]), read_folder(parts[1])
    if len(noisy) != len(ref):
        raise DataError(f"--val-pairs: {len(noisy)} noisy but {len(ref)} reference b-scans")
    if noisy[0].shape != ref[0].shape:
        raise DataError(f"--val-pairs: noisy b-scans are {noisy[0].shape}, references {ref[0].shape}")
    return [ValItem(f"val{i}", to_model_units(x, norm), to_model_units(r, norm, reference=x), x)
            for i, (x, r) in enumerate(zip(noisy, ref))]


def _real(cfg: FitConfig) -> TrainingData:
    sets = load_real(cfg.shared_data or None, cfg.model_normalisation(), cfg.duke_extra_frames, cfg.ln_min_split_psnr,
                     cfg.real_duke, cfg.duke_align, _names(cfg.real_hold_out), cfg.duke_register)
    hn = [im for _, im in sets.noisy]
    synthetic_inputs, synthetic_targets = _synthetic_pairs(cfg)
    inputs, targets = sets.pair_inputs + synthetic_inputs, sets.pair_targets + synthetic_targets
    sampler = CropSampler(hn, sets.ln, cfg.crop, targets=targets or None, pair_inputs=inputs or None)
    val = [ValItem(n, x, a, x) for n, x, a in sets.val_pairs]
    desc = {"source": "real", "noisy_bscans": len(hn),
            "noisy_sources": sorted({n.split("/")[0] for n, _ in sets.noisy}),
            "duke_pairs": len(sets.pair_inputs), "synthetic_duke_pairs": len(synthetic_inputs),
            "synthetic_means": list(cfg.synthetic_means()), "synthetic_grain_px": cfg.duke_synthetic_grain,
            "references_aligned": cfg.duke_align, "ln_bscans": len(sets.ln), "val_pairs": [v.name for v in val],
            "val_split": [n for n, _ in sets.val_split],
            "never_used": ["duke S06-S09", "tian subject 5 (val only)", *_names(cfg.real_hold_out)]}
    # Column-split Noise2Noise only where no reference exists: a Duke frame's mean is not its registered
    # average (different display mapping), and the two targets would pull its output apart. The frame
    # pairs of --n2n-duke-frames are meant for runs without the Duke pairs (--real-duke false).
    unpaired = [im for n, im in sets.noisy if not n.startswith("duke/")]
    split: PairSampler = SplitSampler(unpaired, cfg.crop, extra_noise=cfg.n2n_extra_noise, shrink=cfg.n2n_shrink,
                                        shrink_share=cfg.shrink_share, gap=cfg.n2n_gap,
                                        full_width=cfg.n2n_consistency > 0 or cfg.blind_spot_weight > 0
                                        or bool(cfg.teacher))  # the terms that draw full-width crops
    frames = sim = None
    if cfg.n2n_duke_frames > 0:
        frames, frame_val = _duke_frames(cfg)
        val += frame_val
        desc["n2n_duke_frames"] = {"share": cfg.n2n_duke_frames, "subjects": "Duke train dt1 (5 frames each)",
                                   "val": [v.name for v in frame_val]}
    if cfg.n2n_sim > 0:
        sim, desc["n2n_sim"] = _sim_stacks(cfg)
    return TrainingData(sampler, desc, val, _mixed(cfg, split, frames, sim), sets.val_split)


def _synthetic_pairs(cfg: FitConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Inputs and targets of ``--duke-synthetic-means`` as reference pairs for ``--data real`` (none if unset)."""
    if not cfg.duke_synthetic_means:
        return [], []
    norm = cfg.model_normalisation()
    root = Path(cfg.shared_data or default_shared_data()) / "paired"
    pairs = synthetic_mean_pairs("train", cfg.synthetic_means(), root, cfg.duke_synthetic_grain)
    return [to_model_units(x, norm) for _, x, _ in pairs], duke_targets(pairs, norm, cfg.duke_align)[0]


def _duke_frames(cfg: FitConfig) -> tuple[FrameSampler, list[ValItem]]:
    """Duke frame stacks as Noise2Noise pairs, and the val subject's 2-/3-frame averages."""
    norm = cfg.model_normalisation()
    root = Path(cfg.shared_data or default_shared_data()) / "paired"
    stacks = [to_model_units(f, norm, reference=f[0]) for _, f, _ in duke_frame_stacks("train", root)]
    val = [ValItem(name, to_model_units(x, norm), to_model_units(a, norm, reference=x), x)
           for k in (2, 3) for name, x, a in frame_average_pairs("val", k, root)]
    return FrameSampler(stacks, cfg.crop), val


def _sim_stacks(cfg: FitConfig) -> tuple[FrameSampler, dict]:
    """Independent acquisitions of simulated maculae as Noise2Noise pairs, and their description."""
    from napari_hdcyclegan.simulate import realisation_stacks

    seed = SIM_PAIR_SEED + 1000 * cfg.seed
    norm = cfg.model_normalisation()
    stacks = [to_model_units(f, norm, reference=f[0])
              for f in realisation_stacks(cfg.sim_n, SIM_REALISATIONS, seed, cfg.sim_shape, folds=cfg.n2n_sim_folds)]
    desc = {"share": cfg.n2n_sim, "scenes": cfg.sim_n, "acquisitions": SIM_REALISATIONS,
            "seeds": [seed, seed + cfg.sim_n - 1], "shape": list(cfg.sim_shape), "folds": cfg.n2n_sim_folds,
            "how": "simulate.realisation_stacks: half shared speckle (2-4 frames), half independent A-scans (1-2)"}
    return FrameSampler(stacks, cfg.crop), desc


def _mixed(cfg: FitConfig, split: PairSampler, frames: FrameSampler | None, sim: FrameSampler | None
           ) -> PairSampler:
    """The column-split sampler with shares of its crops from frame stacks and simulated acquisitions."""
    if frames is not None and sim is not None:
        both = cfg.n2n_duke_frames + cfg.n2n_sim
        return MixedSampler(split, MixedSampler(frames, sim, cfg.n2n_sim / both), both)
    if frames is not None:
        return MixedSampler(split, frames, cfg.n2n_duke_frames)
    return MixedSampler(split, sim, cfg.n2n_sim) if sim is not None else split


def _names(spec: str) -> tuple[str, ...]:
    """The names of a comma-separated list, blanks dropped."""
    return tuple(n.strip() for n in spec.split(",") if n.strip())


def load_training_data(cfg: FitConfig) -> TrainingData:
    """The sampler and validation pairs that ``cfg.data`` names."""
    load = {"sim": _sim, "duke": _duke, "real": _real}.get(cfg.data, _folders)
    data = load(cfg)
    data.sampler.gain_jitter = cfg.gain_jitter
    data.sampler.pair_shrink = cfg.pair_shrink
    data.sampler.shrink_share = cfg.shrink_share
    return data
