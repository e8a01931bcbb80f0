"""Training configuration: defaults, a JSON config file, and command-line flags over both."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from napari_hdcyclegan.column_pairs import check_gap
from napari_hdcyclegan.intensity import DEFAULT_NORMALISATION
from napari_hdcyclegan.model.checkpoint import MAX_LATERAL_SIGMA, valid_lateral_sigma

from .frames import MAX_GRAIN_PX

T = TypeVar("T")


def knob(default: T, text: str) -> T:
    """A FitConfig field with its ``--help`` text."""
    return field(default=default, metadata={"help": text})


@dataclass
class FitConfig:
    """Every knob of ``python -m training.fit``; the flag of a field is ``--field-name``."""

    data: str = knob("sim", "sim | duke | real | HN_DIR,LN_DIR")
    shared_data: str = knob("", "data=real: the shared data folder (default: shared/data beside the repository)")
    real_duke: bool = knob(True, "data=real: include the Duke frames and pairs (False: scans without reference only)")
    ln_min_split_psnr: float = knob(31.0, "data=real: real scans at least this clean (raw split PSNR, dB) join LN")
    paired_folders: bool = knob(False, "data=HN_DIR,LN_DIR: the folders hold (input, target) pairs in name order")
    val_pairs: str = knob("",
        "NOISY_DIR,REFERENCE_DIR: paired validation b-scans for folder runs (matched in name order)")
    init_from: str = knob("", "a model directory whose G_L / G_H / D weights start this run (fine-tuning)")
    out: str = knob("runs/hdcyclegan", "the run folder (checkpoints last/ and best/, logs, plots)")
    name: str = knob("hdcyclegan", "the model name written into exported configs")
    steps: int = knob(2000, "adversarial (paper objective) steps, after the pre-training steps")
    pretrain_steps: int = knob(0, "generators: G_L supervised on pairs (autoencoder when unpaired), G_H autoencoder")
    pretrain_gh: bool = knob(True, "pre-train G_H as an LN autoencoder alongside G_L")
    pretrain_d_steps: int = knob(0, "discriminator as an HN-vs-LN domain classifier")
    paired_weight: float = knob(0.0, "L1(G_L(h), target) kept during the adversarial phase (paired data only)")
    paired_target: str = knob("clean", "simulated data: clean | ln")
    pair_shrink: float = knob(0.0,
        "paired crops: a share (shrink_share) from a window up to 1/S times larger, shrunk to the crop (0 = off)")
    gain_jitter: float = knob(0.0, "paired crops (input and target) times one gain, log-uniform in [1/(1+G), 1+G]")
    paired_loss: str = knob("l1", "G_L against its target (pre-training and --paired-weight): l1 | mse")
    mean_weight: float = knob(0.0,
        "pre-training: the layer profile averaged over mean_width A-scans (column_pairs.lateral_mean_loss) against the "
        "input (mean_anchor input) or the target (target): the reference of paired data, the other column half in the "
        "column-split term (data=real)")
    mean_width: int = knob(32, "--mean-weight: A-scans averaged into one layer profile")
    mean_anchor: str = knob("input", "--mean-weight: input | target (the profile G_L must keep)")
    n2n_weight: float = knob(0.0, "MSE between G_L(one column half) and the other half of real noisy scans")
    n2n_consistency: float = knob(0.0,
        "data=real: Neighbor2Neighbor's consistency term on the column halves, this times "
        "(column_pairs.neighbour_loss)")
    n2n_gap: int = knob(1,
        "data=real: the column-split target starts this many A-scans from the input (odd: 1 = the neighbouring "
        "column; 3 pairs columns 0, 2, ... with 3, 5, ..., which share less speckle where neighbours share some)")
    n2n_extra_noise: float = knob(0.0,
        "data=real: add up to this many times real speckle (another scan's half difference) to the N2N input")
    n2n_shrink: float = knob(0.0,
        "data=real: a share (shrink_share) of the column-split crops (and the consistency term's full-width ones) from "
        "a window up to 1/S times taller shrunk to the crop along the A-scans, S drawn from [this, 1] (0 = off): the "
        "finer grain of scans resized for a dataset or a thumbnail (SplitSampler._shrink_rows)")
    shrink_share: float = knob(0.5,
        "the share of crops that --pair-shrink / --n2n-shrink draw shrunk (the rest stay native)")
    n2n_duke_frames: float = knob(0.0,
        "data=real: share of the N2N crops drawn from Duke frame stacks (mean of k frames -> the others' mean); its "
        "validation adds the Duke val subject's 2- and 3-frame averages against their reference")
    n2n_sim: float = knob(0.0,
        "data=real: share of the N2N crops drawn from simulated maculae (sim_n scenes, SIM_REALISATIONS independent "
        "acquisitions each, half of them with speckle shared across A-scans as on the Tian scans): mean of k "
        "acquisitions -> the others' mean, a target whose speckle the input does not share")
    n2n_sim_folds: bool = knob(True,
        "n2n_sim: keep the mirror image of tissue above the top edge in the simulated scenes (False: left out, the "
        "scenes otherwise as they are; simulate.realisation_stacks)")
    teacher: str = knob("",
        "data=real: a model folder whose G_L output on full-width crops of the real scans is a target (MSE, this "
        "weight): distillation from a wider network (training/teacher.py)")
    teacher_weight: float = knob(0.0, "--teacher: the weight of the distillation term")
    blind_spot_weight: float = knob(0.0,
        "data=real: a structured blind-spot term on full-width crops of the real scans, this times (training/ "
        "blind_spot.py): boxes of 2 rows + 1 by 2 cols + 1 pixels hidden, G_L scored at their centres against the raw")
    blind_spot_rows: int = knob(2,
        "--blind-spot-weight: half-height of the hidden box (rows above and below its centre)")
    blind_spot_cols: int = knob(2,
        "--blind-spot-weight: half-width of the hidden box (columns each side of its centre)")
    real_hold_out: str = knob("", "data=real: comma-separated noisy scans kept out of training, scored by split PSNR")
    identity_weight: float = knob(0.0, "L1(G(x), x) for each generator on its own domain (0 = none, as the paper)")
    pool_size: int = knob(0, "past fakes shown to the discriminator (0 = none, as the paper)")
    r1_gamma: float = knob(0.0, "R1 gradient penalty on the discriminator at real images (0 = none, as the paper)")
    ema: float = knob(0.0, "decay of a moving average of G_L's weights, validated and exported instead (0 = off)")
    lambda_gan: float = knob(1.0, "weight of the cross-entropy GAN terms (the paper: 1)")
    lambda_cycle: float = knob(10.0, "weight of the L1 cycle loss (the paper: 10)")
    lr: float = knob(5e-4, "Adam learning rate of the adversarial steps")
    pretrain_lr: float = knob(5e-4, "Adam learning rate of the pre-training steps")
    pretrain_lr_end: float = knob(1.0, "pre-training lr falls linearly to pretrain_lr x this factor")
    beta1: float = knob(0.5, "Adam beta1 (the paper: 0.5)")
    beta2: float = knob(0.999, "Adam beta2 (second-moment decay)")
    lr_decay_start: float = knob(1.0, "fraction of the adversarial steps after which lr falls linearly to 0")
    batch: int = knob(4, "crops per step (per process in a torchrun run)")
    crop: int = knob(128, "training crop, pixels")
    width: int = knob(16, "generator width (channels of the first level)")
    n_res: int = knob(6, "residual blocks at the generator's bottom level")
    residual: bool = knob(False, "generators output input + correction (not in the paper; see Generator)")
    lateral_sigma: float = knob(0.0,
        "Gaussian across A-scans after G_L, in validation and the exported model (px); not taken from --init-from here "
        "(pass the base model's value), training.job / the Train widget take it from there")
    d_width: int = knob(16, "discriminator width")
    d_levels: int = knob(0, "0 = as deep as the crop allows, at most the paper's 7 (>= 2x2 at the last level)")
    normalisation: str = knob("dtype", "dtype | percentile (see napari_hdcyclegan.intensity.unit_range)")
    seed: int = knob(0, "random seed (weights, crops, simulated scans): a run is reproducible on one device")
    sim_n: int = knob(48, "simulated training b-scans")
    sim_val_n: int = knob(4, "simulated validation pairs (data=sim; 0 = none)")
    sim_shape: tuple[int, int] = knob((496, 512), "simulated b-scan shape: rows (axial) and A-scans")
    hn_frames: int = knob(12, "simulated HN domain: frames averaged")
    ln_frames: int = knob(60, "simulated LN domain: frames averaged")
    sim_mismatch: bool = knob(True, "simulated HN and LN scenes slightly displaced, as two real acquisitions are")
    duke_root: str = knob("", "the Duke/Fang 2013 folder (default: the shared data's paired/)")
    duke_extra_frames: bool = knob(True,
        "Duke dt1: also the four other registered frames of each subject, not test.tif alone")
    duke_align: bool = knob(False,
        "fit each Duke average to its noisy frame's grey mapping (training targets only; see data.align_reference)")
    duke_register: bool = knob(False,
        "Duke: each dt1 frame and its average registered to test.tif first (whole pixels; needs duke_extra_frames)")
    duke_frame_means: str = knob("none",
        "Duke inputs from means of the registered dt1 frames (needs duke_register): none | add (two 2- to 5-frame "
        "means per subject beside the single frames; validation adds S05's 2-/3-frame means) | only (every mean of 2-5 "
        "frames, no single frames: a model for few-frame averages; validated on S05's 2-, 3- and 5-frame means)")
    duke_synthetic_means: str = knob("",
        "with duke_frame_means only: also every registered train frame (T02-T07's single frames included) with its "
        "noise divided by sqrt(k), for each k of this comma-separated list, e.g. '2,3,4,5' "
        "(frames.synthetic_mean_pairs)")
    duke_synthetic_grain: float = knob(0.0,
        "the synthetic means' noise smoothed along each A-scan by a Gaussian of this many px (0.9: lag-1 axial "
        "correlation ~0.7, as on Spectralis and most scanners; frames.correlated_axially); then k = 1 is allowed. With "
        "--data real the synthetic means are reference pairs beside the column splits")
    duke_val_frames: bool = knob(False,
        "Duke validation on every registered frame of S05 (five pairs) besides T09, not S05/test.tif alone: two pairs "
        "let one lucky step pick OUT/best (needs duke_register; single-frame runs)")
    val_every: int = knob(200, "steps between validations")
    ckpt_every: int = knob(100, "steps between checkpoints (last/, with the exact resume state)")
    val_bm3d: bool = knob(True, "score BM3D once on the validation pairs for comparison (needs the bm3d extra; slow)")
    val_sim: int = knob(0,
        "simulated maculae scored against their known conditional mean (simulate.truth_pairs; half with speckle shared "
        "between A-scans, where split PSNR rewards kept speckle, half with independent A-scans); 0 = off")
    select_on: str = knob("all", "what picks OUT/best: all (pairs' PSNR + 10 SSIM + split PSNR) | pairs | split | sim")
    device: str = knob("auto", "auto | cpu | cuda | cuda:N | mps")
    amp: bool = knob(False, "bf16 autocast on CPU (slow for training on CPUs without native bf16); fp16/bf16 on CUDA")
    threads: int = knob(0, "torch intra-op threads (0 = torch's default)")

    def d_levels_for_crop(self) -> int:
        """Deepest discriminator that keeps a 2x2 map for this crop, capped at the paper's 7."""
        if self.d_levels:
            return self.d_levels
        levels, size = 0, self.crop
        while size // 2 >= 2 and levels < 7:
            size //= 2
            levels += 1
        return levels

    def synthetic_means(self) -> tuple[int, ...]:
        """``duke_synthetic_means`` as frame counts (empty: none)."""
        return frame_counts(self.duke_synthetic_means)

    def model_normalisation(self) -> dict:
        """The model config's ``normalisation`` block for :attr:`normalisation`.

        Returns
        -------
        dict
            ``{"method": "dtype"}``, or :data:`napari_hdcyclegan.intensity.DEFAULT_NORMALISATION`
            (a copy) for ``"percentile"``.
        """
        return {"method": "dtype"} if self.normalisation == "dtype" else dict(DEFAULT_NORMALISATION)

    def to_json(self) -> dict:
        return asdict(self)


def frame_counts(text: str) -> tuple[int, ...]:
    """Comma-separated frame counts, e.g. ``"2,3,5"`` (empty text: none); ValueError on anything else."""
    return tuple(int(k) for k in text.split(",")) if text else ()


def _bool(text: str) -> bool:
    """A BOOL flag's value; anything but these words is an error (a typo must not read as false)."""
    word = text.lower()
    if word not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return word in ("1", "true", "yes", "on")


def _check_synthetic_means(values: dict) -> None:
    """Exit with a one-line error when the synthetic Duke means are asked for in a way that cannot run."""
    grain = float(values["duke_synthetic_grain"])
    if not 0 <= grain <= MAX_GRAIN_PX:
        raise SystemExit(f"error: duke_synthetic_grain must be from 0 to {MAX_GRAIN_PX:g} pixels, got {grain}")
    if not values["duke_synthetic_means"]:
        if grain > 0:
            raise SystemExit("error: duke_synthetic_grain needs --duke-synthetic-means")
        return
    try:
        ks = frame_counts(str(values["duke_synthetic_means"]))
    except ValueError:
        ks = ()
    least = 1 if grain > 0 else 2  # k = 1 without grain would be the frame itself
    if not ks or min(ks) < least:
        raise SystemExit(f"error: duke_synthetic_means must be frame counts >= {least} separated by commas, "
                         f"got {values['duke_synthetic_means']!r}")
    if values["data"] != "real" and values["duke_frame_means"] != "only":
        raise SystemExit("error: duke_synthetic_means needs --duke-frame-means only (or --data real)")


def _typed(key: str, value: object, default: object, source: str) -> object:
    """A config file's value checked against the field's type (ints are taken for floats)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, tuple):
        ok = (isinstance(value, list) and len(value) == len(default)
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        value = tuple(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, str)
    if not ok:
        raise SystemExit(f"error: {source}: {key} must be like {default!r}, got {value!r}")
    return value


DESCRIPTION = ("Train HDcycleGAN: the paper's unpaired objective (two generators, one shared discriminator, "
               "cross-entropy GAN terms + 10 x L1 cycle loss), optionally after pre-training steps and with "
               "paired or real-data terms. Every flag is also a key of --config's JSON file; each shipped "
               "model's MODEL_CARD.md gives the command that trained it.")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.fit", description=DESCRIPTION)
    p.add_argument("--config", help="JSON file with any of the fields below; flags override it")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/last exactly where it stopped, with OUT/fit_config.json's settings")
    defaults = FitConfig()
    for f in fields(FitConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        shown = repr(value) if isinstance(value, str) else value
        text = f"{f.metadata['help']} (default {shown})".replace("%", "%%")
        if isinstance(value, bool):
            p.add_argument(flag, type=_bool, default=None, metavar="BOOL", help=text)
        elif isinstance(value, tuple):
            p.add_argument(flag, type=int, nargs=len(value), default=None, help=text)
        else:
            p.add_argument(flag, type=type(value), default=None, help=text)
    return p


#: Settings ``--resume`` may change: where and how fast the run goes on, and how long; not what it trains.
RESUMABLE = frozenset({"steps", "device", "threads", "amp", "val_every", "ckpt_every", "val_bm3d", "out",
                       "name", "shared_data", "duke_root"})


def _refuse_changes(args: argparse.Namespace, saved: dict) -> None:
    """Refuse flags given with ``--resume`` that change what the run trains (its ``fit_config.json``):
    the rest of the run would silently train something else, recorded as if it had always done so."""
    changed = [k for k in saved if k not in RESUMABLE and getattr(args, k) is not None
               and _same_kind(getattr(args, k)) != _same_kind(saved[k])]
    if changed:
        flags = ", ".join(f"--{k.replace('_', '-')} ({saved[k]!r} in the run)" for k in changed)
        raise SystemExit(f"error: --resume continues the run as it was configured; these flags change it: "
                         f"{flags}. Start a new run (--init-from RUN/last) to train otherwise")


def _same_kind(value: Any) -> Any:
    """A value as compared between the command line and a saved config (JSON lists are tuples)."""
    return tuple(value) if isinstance(value, list) else value


def parse_args(argv: list[str] | None = None) -> tuple[FitConfig, bool]:
    """Defaults, then the config file, then flags; returns ``(config, resume)``."""
    args = _parser().parse_args(argv)
    values = asdict(FitConfig())
    config = args.config
    saved = Path(args.out or values["out"]) / "fit_config.json"
    if args.resume and not config:
        if not saved.is_file():  # the defaults would rebuild another run around its checkpoint
            raise SystemExit(f"error: --resume: {saved} is missing; pass --config with the run's settings")
        # --resume alone continues the run as it was configured; flags may change only RESUMABLE settings
        config = str(saved)
    if config:
        try:
            loaded = json.loads(Path(config).read_text())
        except (OSError, ValueError) as exc:  # missing, unreadable, not JSON
            raise SystemExit(f"error: --config {config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"error: --config {config}: expected a JSON object of settings")
        unknown = set(loaded) - set(values)
        if unknown:
            raise SystemExit(f"error: unknown keys in {config}: {sorted(unknown)}")
        values.update({k: _typed(k, v, values[k], config) for k, v in loaded.items()})
    if args.resume and config == str(saved):
        _refuse_changes(args, values)
    for key in values:
        given = getattr(args, key)
        if given is not None:
            values[key] = given
    values["sim_shape"] = tuple(values["sim_shape"])
    for key in ("batch", "crop", "width", "d_width", "n_res", "ckpt_every", "val_every"):
        if int(values[key]) < (0 if key == "n_res" else 1):
            raise SystemExit(f"error: {key} must be >= {0 if key == 'n_res' else 1}, got {values[key]}")
    if int(values["steps"]) < 0 or int(values["pretrain_steps"]) < 0 or \
            int(values["steps"]) + int(values["pretrain_steps"]) < 1:  # --steps 0: a pretraining-only run
        raise SystemExit(f"error: steps and pretrain_steps must be >= 0 and at least one step in all, got "
                         f"{values['steps']} and {values['pretrain_steps']}")
    if float(values["lr"]) <= 0 or float(values["pretrain_lr"]) <= 0:
        raise SystemExit(f"error: lr and pretrain_lr must be > 0, got {values['lr']} and {values['pretrain_lr']}")
    if values["select_on"] not in ("all", "pairs", "split", "sim"):
        raise SystemExit(f"error: select_on must be all, pairs, split or sim, got {values['select_on']!r}")
    if int(values["val_sim"]) < 0 or (values["select_on"] == "sim" and int(values["val_sim"]) < 1):
        raise SystemExit("error: val_sim must be >= 0, and >= 1 with select_on sim")
    if float(values["mean_weight"]) < 0 or int(values["mean_width"]) < 1:
        raise SystemExit("error: mean_weight must be >= 0 and mean_width >= 1")
    if values["mean_anchor"] not in ("input", "target"):
        raise SystemExit(f"error: mean_anchor must be input or target, got {values['mean_anchor']!r}")
    if values["paired_loss"] not in ("l1", "mse"):
        raise SystemExit(f"error: paired_loss must be l1 or mse, got {values['paired_loss']!r}")
    if not valid_lateral_sigma(float(values["lateral_sigma"])):
        raise SystemExit(f"error: lateral_sigma must be from 0 to {MAX_LATERAL_SIGMA:g} pixels, "
                         f"got {values['lateral_sigma']}")
    if not 0 <= float(values["ema"]) < 1:
        raise SystemExit(f"error: ema must be from 0 (off) to below 1, got {values['ema']}")
    for key in ("pair_shrink", "n2n_shrink"):
        if not (float(values[key]) == 0 or 0 < float(values[key]) <= 1):
            raise SystemExit(f"error: {key} must be 0 (off) or in (0, 1], got {values[key]}")
    if not 0 < float(values["shrink_share"]) <= 1:
        raise SystemExit(f"error: shrink_share must be in (0, 1], got {values['shrink_share']}")
    if float(values["gain_jitter"]) < 0:
        raise SystemExit(f"error: gain_jitter must be >= 0, got {values['gain_jitter']}")
    blind_spot = ("blind_spot_weight", "blind_spot_rows", "blind_spot_cols")
    if min(float(values[k]) for k in blind_spot) < 0:
        raise SystemExit("error: blind_spot_weight, blind_spot_rows and blind_spot_cols must be >= 0")
    if float(values["n2n_consistency"]) < 0:
        raise SystemExit(f"error: n2n_consistency must be >= 0, got {values['n2n_consistency']}")
    if float(values["n2n_consistency"]) > 0 and float(values["n2n_extra_noise"]) > 0:
        raise SystemExit("error: n2n_consistency cannot be combined with n2n_extra_noise")
    try:
        gap = check_gap(values["n2n_gap"])
    except ValueError as exc:
        raise SystemExit(f"error: n2n_gap: {exc}") from None
    if gap > 1 and (values["teacher"] or float(values["blind_spot_weight"]) > 0
                    or float(values["n2n_extra_noise"]) > 0):
        raise SystemExit("error: n2n_gap above 1 cannot be combined with teacher, blind_spot_weight or n2n_extra_noise")
    if gap > 1 and float(values["n2n_weight"]) <= 0:
        raise SystemExit("error: n2n_gap needs --n2n-weight > 0 (it changes the Noise2Noise term's pairs)")
    if float(values["n2n_extra_noise"]) < 0:
        raise SystemExit(f"error: n2n_extra_noise must be >= 0, got {values['n2n_extra_noise']}")
    if values["paired_folders"] and values["data"] in ("sim", "duke", "real"):
        raise SystemExit("error: paired_folders needs --data IN_DIR,TARGET_DIR")
    if not 0 <= float(values["n2n_duke_frames"]) <= 1:
        raise SystemExit(f"error: n2n_duke_frames must be in [0, 1], got {values['n2n_duke_frames']}")
    if not 0 <= float(values["n2n_sim"]) <= 1 or float(values["n2n_sim"]) + float(values["n2n_duke_frames"]) > 1:
        raise SystemExit(f"error: n2n_sim must be in [0, 1] and n2n_sim + n2n_duke_frames at most 1, got "
                         f"{values['n2n_sim']} and {values['n2n_duke_frames']}")
    if not values["n2n_sim_folds"] and float(values["n2n_sim"]) <= 0:
        raise SystemExit("error: n2n_sim_folds false needs --n2n-sim > 0 (it changes the simulated pairs only)")
    if float(values["teacher_weight"]) < 0 or bool(values["teacher"]) != (float(values["teacher_weight"]) > 0):
        raise SystemExit("error: --teacher and --teacher-weight > 0 go together (distillation from a model folder)")
    pair_shares = float(values["n2n_duke_frames"]) + float(values["n2n_sim"])
    if values["teacher"] and (float(values["n2n_extra_noise"]) > 0 or pair_shares > 0):
        raise SystemExit("error: teacher cannot be combined with n2n_extra_noise, n2n_duke_frames or n2n_sim")
    real_only = (values["real_hold_out"] or bool(values["teacher"]) or float(values["n2n_extra_noise"]) > 0
                 or gap > 1
                 or float(values["n2n_shrink"]) > 0
                 or pair_shares > 0 or float(values["n2n_consistency"]) > 0 or float(values["blind_spot_weight"]) > 0)
    if real_only and values["data"] != "real":
        raise SystemExit("error: real_hold_out, n2n_extra_noise, n2n_gap, n2n_shrink, n2n_duke_frames, n2n_sim, "
                         "n2n_consistency, blind_spot_weight and teacher need --data real")
    if values["duke_register"] and (values["data"] not in ("duke", "real") or not values["duke_extra_frames"]
                                    or (values["data"] == "real" and not values["real_duke"])):
        raise SystemExit("error: duke_register needs --data duke (or real with --real-duke true) and "
                         "--duke-extra-frames true")
    if float(values["n2n_consistency"]) > 0 and float(values["n2n_weight"]) <= 0:
        raise SystemExit("error: n2n_consistency needs --n2n-weight > 0 (it is part of the Noise2Noise term)")
    if pair_shares > 0 and float(values["n2n_weight"]) <= 0:
        raise SystemExit("error: n2n_duke_frames and n2n_sim need --n2n-weight > 0 (the Noise2Noise term draws "
                         "their pairs)")
    if values["duke_frame_means"] not in ("none", "add", "only"):
        raise SystemExit(f"error: duke_frame_means must be none, add or only, got {values['duke_frame_means']!r}")
    if values["duke_frame_means"] != "none" and (values["data"] != "duke" or not values["duke_register"]):
        raise SystemExit("error: duke_frame_means needs --data duke and --duke-register true")
    _check_synthetic_means(values)
    if values["duke_val_frames"] and (values["data"] != "duke" or not values["duke_register"]
                                      or values["duke_frame_means"] == "only"):
        raise SystemExit("error: duke_val_frames needs --data duke, --duke-register true and single frames")
    return FitConfig(**values), args.resume
