"""Errors against known boundaries and the choice of the feature channel that tracks ILM / RPE.

:func:`choose_channel` scores every channel of the early stages by the stage-one (skeleton) error
against known truth (simulated b-scans) or, without truth, by a label-free score (two long, smooth
lines on strong edges). :func:`calibrate_boundary_channel` runs it on simulated b-scans with a
denoiser and records ``{"stage", "channel", "how", ...}`` as ``config.boundary_channel``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..intensity import check_image
from ..io.atomic import atomic_output
from ..progress import CancelFn, ProgressFn, Steps, drive
from .skeleton import axial_gradient, prepare_bscan, skeleton_boundaries
from .table import BOUNDARY_NAMES

#: Stages whose feature maps stay spatially faithful to the input (paper Sec. 3.4).
EARLY_STAGES: tuple[str, ...] = ("init", "down1", "down2", "down3", "res1")


def boundary_errors(found: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]
                    ) -> dict[str, float]:
    """Mean absolute error (px) per boundary over A-scans where the truth is known and the
    detection is not missing, plus ``<name>_coverage`` (fraction of those A-scans detected)."""
    out: dict[str, float] = {}
    for name in BOUNDARY_NAMES:
        f = np.asarray(found[name], dtype=np.float64)
        t = np.asarray(truth[name], dtype=np.float64)
        if f.shape != t.shape:
            raise ValueError(f"{name}: detected shape {f.shape} does not match truth shape {t.shape}")
        known = np.isfinite(t)
        both = known & np.isfinite(f)
        out[name] = float(np.mean(np.abs(f[both] - t[both]))) if both.any() else float("nan")
        out[f"{name}_coverage"] = float(both.sum() / known.sum()) if known.any() else float("nan")
    return out


def supervised_score(found: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                     miss_px: float = 20.0) -> float:
    """Lower is better: mean of ILM and RPE errors, each missing A-scan counted as ``miss_px``."""
    errs = boundary_errors(found, truth)
    total = 0.0
    for name in BOUNDARY_NAMES:
        cov = errs[f"{name}_coverage"]
        if not np.isfinite(cov) or cov == 0:
            total += miss_px
        else:
            total += cov * min(errs[name], miss_px) + (1 - cov) * miss_px
    return total / len(BOUNDARY_NAMES)


def label_free_score(found: Mapping[str, np.ndarray], bscan: np.ndarray,
                     grad: np.ndarray | None = None) -> float:
    """Higher is better, no truth needed: coverage x edge contrast / (1 + roughness).

    Coverage = fraction of A-scans with both lines; edge contrast = mean dark-to-bright step at the
    ILM plus bright-to-dark step at the RPE on the smoothed b-scan ([0, 1] units per px);
    roughness = median absolute second difference of both lines and of their distance (px).
    """
    ilm = np.asarray(found["ILM"], dtype=np.float64)
    rpe = np.asarray(found["RPE"], dtype=np.float64)
    both = np.isfinite(ilm) & np.isfinite(rpe)
    if both.sum() < 3:
        return 0.0
    grad = axial_gradient(bscan) if grad is None else grad
    cols = np.flatnonzero(both)
    h = grad.shape[0]
    g_ilm = grad[np.clip(np.rint(ilm[cols]).astype(int), 0, h - 1), cols]
    g_rpe = -grad[np.clip(np.rint(rpe[cols]).astype(int), 0, h - 1), cols]
    contrast = max(float(np.mean(g_ilm) + np.mean(g_rpe)), 0.0)
    rough = np.nanmean([np.nanmedian(np.abs(np.diff(x, 2))) for x in (ilm, rpe, rpe - ilm)])
    return float(both.mean() * contrast / (1.0 + rough))


def _stack(maps: np.ndarray, n: int) -> np.ndarray:
    """Feature maps of one stage as (N, C, H, W)."""
    maps = np.asarray(maps)
    if maps.ndim == 3 and n == 1:
        maps = maps[None]
    if maps.ndim != 4 or maps.shape[0] != n:
        raise ValueError(f"feature maps of shape {maps.shape} do not match {n} b-scan(s); "
                         "expected (C, H, W) for one b-scan or (N, C, H, W)")
    return maps


def choose_channel(feature_maps: Mapping[str, np.ndarray], bscan: np.ndarray,
                   reference_boundaries: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | None = None,
                   *, median_size: int = 5, top_k: int = 8, n_screen: int = 1) -> dict[str, Any]:
    """Pick the (stage, channel) whose skeleton best tracks ILM and RPE.

    ``feature_maps``: stage -> (C, H, W) for one b-scan, or (N, C, H, W) for N b-scans ``bscan``
    ((H, W) or (N, H, W)). With ``reference_boundaries`` (dict name -> (W,) or (N, W), or one dict per
    b-scan) every channel is scored by :func:`supervised_score` (mean abs. error, misses penalised);
    without, by :func:`label_free_score`. All channels are screened without edge refinement on the
    first ``n_screen`` b-scans; the best ``top_k`` are rescored with refinement on all b-scans.
    Returns ``{"stage", "channel", "score", "how", "ranking"}`` (score: px, or label-free).
    """
    vol = check_image(bscan)
    vol = vol[None] if vol.ndim == 2 else vol
    n = vol.shape[0]
    refs: list[Mapping[str, np.ndarray]] | None = None
    if reference_boundaries is not None:
        if isinstance(reference_boundaries, Mapping):
            refs = [{k: np.atleast_2d(np.asarray(reference_boundaries[k]))[i] for k in BOUNDARY_NAMES}
                    for i in range(n)]
        else:
            refs = list(reference_boundaries)
        if len(refs) != n:
            raise ValueError(f"{len(refs)} reference boundaries for {n} b-scan(s)")
    if not feature_maps:
        raise ValueError("no feature maps to choose from")
    stacks = {stage: _stack(maps, n) for stage, maps in feature_maps.items()}
    preps = [prepare_bscan(b) for b in vol]

    def score(stage: str, ch: int, refine: bool, count: int = n) -> float:
        vals = []
        for i in range(count):
            found = skeleton_boundaries(vol[i], stacks[stage][i, ch], median_size=median_size,
                                      refine=refine, prepared=preps[i])
            vals.append(supervised_score(found, refs[i]) if refs is not None
                        else -label_free_score(found, vol[i], preps[i]["grad"]))
        return float(np.mean(vals))  # lower is better in both modes

    count = min(max(int(n_screen), 1), n)
    screened = sorted((score(s, c, False, count), s, c) for s in stacks for c in range(stacks[s].shape[1]))
    final = sorted((score(s, c, True), s, c) for _, s, c in screened[:max(int(top_k), 1)])
    best, stage, ch = final[0]
    how = ("min. mean abs. error vs reference ILM/RPE" if refs is not None
           else "max. label-free score (coverage x edge contrast / roughness)")
    return {"stage": stage, "channel": int(ch), "score": float(best if refs is not None else -best),
            "how": f"{how} over {n} b-scan(s), {len(screened)} channels of {list(stacks)}",
            "ranking": [(s, int(c), float(v)) for v, s, c in final]}


def iter_calibrate_boundary_channel(denoiser: Any, n: int = 4, seed: int = 0, *,
                                    stages: Sequence[str] = EARLY_STAGES,
                                    shape: tuple[int, int] = (496, 512),
                                    model_dir: str | os.PathLike | None = None) -> Steps[dict[str, Any]]:
    """Choose the boundary channel of ``denoiser`` on ``n`` simulated b-scans with known ILM/RPE.

    Each simulated HN b-scan is denoised when the model is trained (the b-scan side of the product;
    an untrained model's output is noise, so the raw HN b-scan is used) and its feature maps of
    ``stages`` are scored against the simulator's truth by :func:`choose_channel`. The choice is set
    on ``denoiser.config.boundary_channel``; with ``model_dir`` it is also written into that model's
    ``config.json`` (never do that for a shipped, read-only model).

    Yields ``(done, total)`` (first ``(0, total)``, then after each denoised b-scan and each feature
    map) and returns ``{"stage", "channel", "how", "score_px"}``; stop iterating to cancel.
    :func:`calibrate_boundary_channel` is its callback form.
    """
    from ..simulate import simulate_bscan

    available = denoiser.stage_channels()
    stages = [s for s in stages if s in available]
    if not stages:
        raise ValueError(f"none of the stages {list(EARLY_STAGES)} exist in this model ({list(available)})")
    bscans: list[np.ndarray] = []
    maps: dict[str, list[np.ndarray]] = {s: [] for s in stages}
    refs: list[dict[str, np.ndarray]] = []
    total = n * (len(stages) + 1) + 1
    yield 0, total
    for i in range(n):
        sim = simulate_bscan(seed=seed + i, shape=shape)
        bscans.append(np.asarray(denoiser.denoise(sim.hn) if denoiser.trained else sim.hn, dtype=np.float32))
        refs.append({k: np.asarray(sim.boundaries[k], dtype=np.float64) for k in BOUNDARY_NAMES})
        yield i * (len(stages) + 1) + 1, total
        for j, stage in enumerate(stages):
            maps[stage].append(np.asarray(denoiser.feature_maps(sim.hn, stage), dtype=np.float32))
            yield i * (len(stages) + 1) + j + 2, total
    found = choose_channel({s: np.stack(m) for s, m in maps.items()}, np.stack(bscans), refs)
    choice = {"stage": found["stage"], "channel": found["channel"],
              "how": f"calibrate_boundary_channel(n={n}, seed={seed}, shape={list(shape)}): {found['how']}",
              "score_px": round(found["score"], 3)}
    denoiser.config.boundary_channel = choice
    if model_dir is not None:
        write_boundary_channel(model_dir, choice)
    yield total, total
    return choice


def calibrate_boundary_channel(denoiser: Any, n: int = 4, seed: int = 0, *,
                               stages: Sequence[str] = EARLY_STAGES,
                               shape: tuple[int, int] = (496, 512),
                               model_dir: str | os.PathLike | None = None,
                               progress: ProgressFn = None, cancel: CancelFn = None) -> dict[str, Any]:
    """:func:`iter_calibrate_boundary_channel` with ``progress(done, total)`` and ``cancel()``
    checked between steps (True raises :class:`~napari_hdcyclegan.progress.Cancelled`)."""
    steps = iter_calibrate_boundary_channel(denoiser, n, seed, stages=stages, shape=shape, model_dir=model_dir)
    return drive(steps, progress, cancel)


def write_boundary_channel(model_dir: str | os.PathLike, choice: Mapping[str, Any]) -> Path:
    """Store ``choice`` as ``boundary_channel`` in a model directory's ``config.json`` (atomic)."""
    path = Path(model_dir) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read model config ({exc})") from exc
    data["boundary_channel"] = dict(choice)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


def boundary_channel(config: Any) -> tuple[str, int] | None:
    """``(stage, channel)`` recorded in a model config (``ModelConfig`` or dict), or None."""
    bc = config.get("boundary_channel") if isinstance(config, Mapping) else getattr(config, "boundary_channel", None)
    if not bc or "stage" not in bc or "channel" not in bc:
        return None
    return str(bc["stage"]), int(bc["channel"])


def recorded_channel(denoiser: Any) -> tuple[str, int] | None:
    """:func:`boundary_channel` of ``denoiser``'s config, checked against its generator's stages.

    Raises
    ------
    CheckpointError
        For a recorded stage or channel this generator does not have (a hand-edited config).
    """
    from ..model.checkpoint import CheckpointError

    where = str(getattr(denoiser, "source", None) or getattr(denoiser, "name", "the model"))
    try:
        chosen = boundary_channel(denoiser.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(where, f"config.json's boundary_channel needs a stage name and an integer channel "
                                     f"({exc})") from exc
    if chosen is None:
        return None
    channels = denoiser.stage_channels()
    stage, channel = chosen
    if stage not in channels or not 0 <= channel < channels[stage]:
        has = f"stage {stage!r} has {channels[stage]} channels" if stage in channels else \
            f"stages are {', '.join(channels)}"
        raise CheckpointError(where, f"config.json's boundary_channel ({stage}, {channel}) is not in this "
                                     f"generator ({has})")
    return chosen
