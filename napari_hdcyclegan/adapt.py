"""Adapting a denoiser to one scan: Noise2Noise fine-tuning on the scan's own column halves.

Neighbouring A-scans carry nearly independent speckle, so the even- and odd-column halves of a
b-scan are two noisy views of almost the same scene: a generator trained to map one half to the
other learns to denoise this scanner's noise, with no clean reference (Noise2Noise). A shipped
model meets scans from scanners it never saw; a few dozen such steps on the scan itself fit it to
their noise. The two halves are half a column apart, a shift that a plain half-to-half mapping
learns as a lateral blur (lines along steep layer edges in the residual); the Neighbor2Neighbor
consistency term of :mod:`napari_hdcyclegan.column_pairs` reduces it. The steps can also pull a
model away from what it learned from real averages, so the adaptation is scored on columns it did
not train on (the right third of each b-scan, split PSNR of
:func:`napari_hdcyclegan.metrics.split_psnr`) and kept only when that score rises by
``min_gain`` dB; otherwise the base model is returned and :class:`Adaptation` says why. Scans whose
neighbouring A-scans share speckle (most averaged Spectralis scans) are not adapted at all: there the
halves share noise, the objective learns to keep it and the held-out score rewards that (on simulated
scans of that kind 60 steps raised it by 0.2-2.1 dB while losing 0.8-4.4 dB against the truth;
docs/real_training.md, section 18).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .column_pairs import full_crops, neighbour_loss
from .denoiser import Denoiser
from .errors import InputError, ModelError
from .memory import is_out_of_memory, short_oom
from .metrics import column_halves, lateral_noise_ratio
from .model.networks import run_generator
from .normalise import check_input, volume_range
from .progress import Steps

#: Fine-tuning steps of the CLI's ``--adapt`` when no number is given.
DEFAULT_STEPS = 60
#: Keep the adapted model only if the held-out split PSNR rises by at least this much (dB).
MIN_GAIN_DB = 0.1
LEARNING_RATE = 1e-4
BATCH = 4
CROP = 128
#: B-scans of a volume the crops come from (evenly spaced), and those the held-out score uses.
MAX_BSCANS = 16
SCORED_BSCANS = 4
#: Columns kept out of training and used for the decision: the right third of each b-scan.
HELD_OUT = 1 / 3
MAX_STEPS = 5000
#: Below this :func:`~napari_hdcyclegan.metrics.lateral_noise_ratio` neighbouring A-scans share speckle and
#: the scan is not adapted (on the shared real scans: 0.88-0.99 with independent A-scans, 0.44-0.64 with shared
#: speckle; a flat scan gives NaN and is adapted as before).
SHARED_SPECKLE_BELOW = 0.8
#: Weight of the Neighbor2Neighbor consistency term (:func:`napari_hdcyclegan.column_pairs.neighbour_loss`).
CONSISTENCY = 2.0


@dataclass(frozen=True)
class Adaptation:
    """What :func:`iter_adapt` did: held-out split PSNR before / after (dB) and whether it kept the result."""

    steps: int
    before_db: float
    after_db: float
    kept: bool
    min_gain_db: float
    seconds: float
    seed: int
    consistency: float
    skipped: str = ""  # why no step was taken (then before_db / after_db are NaN)

    def to_json(self) -> dict[str, Any]:
        """The record that goes into an output's provenance."""
        return {k: ((round(v, 3) if np.isfinite(v) else None) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}

    def describe(self, model: str) -> str:
        """One line for a user: the scores and the decision."""
        if self.skipped:
            return f"{model} not adapted to this scan: {self.skipped}; the output is {model}'s own"
        verdict = ("kept" if self.kept else
                   f"not kept (below +{self.min_gain_db:g} dB): the output is {model}'s own")
        return (f"adapted {model} to this scan in {self.steps} steps ({self.seconds:.0f} s): held-out split "
                f"PSNR {self.before_db:.2f} -> {self.after_db:.2f} dB, {verdict}")


def iter_adapt(denoiser: Denoiser, data: Any, steps: int = DEFAULT_STEPS, *, lr: float = LEARNING_RATE,
               seed: int = 0, min_gain: float = MIN_GAIN_DB, consistency: float = CONSISTENCY,
               shared_speckle: bool = False) -> Steps[tuple[Denoiser, Adaptation]]:
    """Fine-tune a copy of ``denoiser`` on ``data``'s column halves; yields ``(done, steps)``.

    Parameters
    ----------
    denoiser : Denoiser
        The base model; it is not changed (a shared, resident model stays as it was).
    data : array-like
        A 2D b-scan or a 3D volume (b-scans on axis 0), raw values as :meth:`Denoiser.denoise` takes.
    steps : int
        Adam steps of ``BATCH`` crops each (1 to ``MAX_STEPS``).
    lr : float
        Adam's learning rate.
    seed : int
        Seeds the crops: the same input, model and seed give the same weights on one machine.
    min_gain : float
        dB the held-out split PSNR must rise by for the adapted model to be returned.
    consistency : float
        Weight of the term that keeps the half-to-half mapping from learning a lateral blur
        (0: plain column-split Noise2Noise).
    shared_speckle : bool
        Adapt even when neighbouring A-scans share speckle (``lateral_noise_ratio`` below
        ``SHARED_SPECKLE_BELOW``), where the held-out score cannot judge the result; for experiments.

    Returns
    -------
    tuple
        ``(denoiser, adaptation)``: the adapted copy (named ``<model>+adapted``) if kept, else the base.
    """
    if not 1 <= int(steps) <= MAX_STEPS:
        raise InputError(f"adaptation steps must be from 1 to {MAX_STEPS}, got {steps}")
    t0 = time.perf_counter()
    units = _model_inputs(denoiser, data)
    why = _not_adaptable(units, shared_speckle)
    if why:
        yield 0, int(steps)
        return denoiser, Adaptation(0, float("nan"), float("nan"), False, float(min_gain), time.perf_counter() - t0,
                                    int(seed), float(consistency), why)
    cut = int(round(units.shape[2] * (1 - HELD_OUT)))
    train = [u[:, :cut] for u in units]
    crop = _crop_size((units.shape[1], cut // 2))  # a column half of the training columns
    held = units[np.linspace(0, len(units) - 1, min(SCORED_BSCANS, len(units))).round().astype(int), :, cut:]
    before = _held_out_db(denoiser, held)
    gen = copy.deepcopy(denoiser.generator).train()
    for p in gen.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(gen.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    amp = denoiser.autocast_dtype
    amp = None if amp is torch.float16 else amp  # fp16 gradients underflow without a scaler: train in fp32
    yield 0, int(steps)
    for step in range(int(steps)):
        full, parity = full_crops(rng, train, crop, BATCH)
        try:
            with torch.autocast(denoiser.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = neighbour_loss(lambda x: run_generator(gen, x), torch.from_numpy(full).to(denoiser.device),
                                      parity, consistency)[0]
            if bool(torch.isfinite(loss)):  # one overflow must not poison the weights
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise MemoryError(f"out of memory on {denoiser.device} while adapting the model "
                              f"({short_oom(exc)}); adapt without it or free memory") from exc
        yield step + 1, int(steps)
    adapted = Denoiser(gen, denoiser.config, denoiser.device, name=f"{denoiser.name}+adapted",
                       trained=denoiser.trained, source=denoiser.source, weights_sha256=denoiser.weights_sha256,
                       precision=denoiser.precision, batch_size=denoiser.batch_size)
    try:
        after = _held_out_db(adapted, held)
    except ModelError:  # diverged to NaN/inf: the base model stays
        after = float("nan")
    kept = bool(np.isfinite(after)) and after - before >= min_gain
    record = Adaptation(int(steps), before, after, kept, float(min_gain), time.perf_counter() - t0, int(seed),
                        float(consistency))
    return (adapted if kept else denoiser), record


def _not_adaptable(units: np.ndarray, shared_speckle: bool) -> str:
    """Why these b-scans (model units) give no training signal, or "" when they do."""
    if not float(np.ptp(units)) > 0:  # blank or all NaN: a "gain" on it would measure nothing
        return "it has no contrast (blank, constant or no finite pixels), so there is nothing to fit"
    ratio = lateral_noise_ratio(units)
    if ratio < SHARED_SPECKLE_BELOW and not shared_speckle:
        return (f"its neighbouring A-scans share speckle (lateral noise ratio {ratio:.2f} < {SHARED_SPECKLE_BELOW:g}), "
                "so its column halves are not independent views")
    return ""


def _model_inputs(denoiser: Denoiser, data: Any) -> np.ndarray:
    """Up to ``MAX_BSCANS`` evenly spaced b-scans of ``data`` in the model's units, (N, H, W) float32."""
    shape, dtype = check_input(data)
    if shape[-1] < 12:
        raise InputError(f"adaptation needs b-scans at least 12 A-scans wide, got {shape[-1]}")
    fixed = volume_range(data, shape, dtype, denoiser.normalisation)
    if len(shape) == 2:
        return denoiser.model_input(np.asarray(data)[None], fixed)
    picks = np.unique(np.linspace(0, shape[0] - 1, min(MAX_BSCANS, shape[0])).round().astype(int))
    return np.concatenate([denoiser.model_input(np.asarray(data[int(i)])[None], fixed) for i in picks])


def _crop_size(half: tuple[int, ...]) -> tuple[int, int]:
    """Training crop (rows, columns): ``CROP`` or what the column half holds."""
    return min(CROP, half[0]), min(CROP, half[1])


def _held_out_db(denoiser: Denoiser, held: np.ndarray) -> float:
    """Split PSNR (dB, model units) of ``denoiser`` on the held-out columns, the squared errors pooled
    over b-scans first (a flat, blank b-scan's near-zero error must not dominate a mean of dB values)."""
    errors = []
    for bscan in held:
        even, odd = column_halves(bscan)
        for a, b in ((even, odd), (odd, even)):
            with torch.inference_mode():
                out = denoiser.run_units(torch.from_numpy(np.ascontiguousarray(a))[None].to(denoiser.device))
            d = out[0].cpu().numpy().astype(np.float64) - b
            d = d[np.isfinite(d)]
            if d.size:
                errors.append(float(np.mean((d - d.mean()) ** 2)))
    return float(10 * np.log10(1.0 / max(float(np.mean(errors)), 1e-12))) if errors else float("nan")
