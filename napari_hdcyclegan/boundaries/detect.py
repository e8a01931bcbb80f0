"""ILM and RPE (Bruch's membrane) per b-scan: the skeleton (stage one) refined by optimal paths.

:func:`detect_boundaries` runs stage one (:mod:`.skeleton`, the paper's procedure) and, with
``refine=True`` (default), stage two (:mod:`.paths`): optimal paths on the b-scan's own gradients,
pulled weakly towards the skeleton lines and, in a volume, towards the previous b-scan's lines.
The search is confined to the A-scans where the feature map x b-scan responds (the retina). Volume
functions add ``doubtful`` (N, W) from :mod:`.checks`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..intensity import check_image
from ..progress import CancelFn, ProgressFn, Steps, drive, map_steps
from .channel import iter_calibrate_boundary_channel, recorded_channel
from .checks import doubtful_ascans
from .layers import INNER_NAMES, LayerParams, inner_boundaries
from .paths import PathParams, refine_paths
from .skeleton import prepare_bscan, skeleton_boundaries
from .table import BOUNDARY_NAMES

FeatureMaps = Callable[[int, np.ndarray], np.ndarray] | np.ndarray
#: One step of :func:`iter_boundaries`: ``(done, total, message)``.
Step = tuple[int, int, str]


def is_flat(bscan: np.ndarray) -> bool:
    """Whether a b-scan has no two different finite values (blank, constant or all NaN): nothing to detect."""
    finite = np.asarray(bscan)[np.isfinite(bscan)]
    return finite.size == 0 or not finite.max() > finite.min()


def support_columns(unit: np.ndarray, feature_map: np.ndarray, frac: float = 0.1) -> np.ndarray:
    """A-scans where feature map x b-scan responds at all (column peak > ``frac`` x typical)."""
    product = ndi.uniform_filter(unit * np.abs(np.nan_to_num(np.asarray(feature_map, np.float32))), 5)
    peak = product.max(axis=0)
    ref = float(np.percentile(peak, 90))
    if ref <= 0:
        return np.zeros(peak.shape, bool)
    return ndi.binary_closing(peak > frac * ref, np.ones(9, bool), border_value=1) & (peak > 0)


def combine_priors(*lines: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Per boundary, the mean of the finite prior rows (NaN where none)."""
    out = {}
    for name in BOUNDARY_NAMES:
        stack = [np.asarray(x[name], np.float64) for x in lines if x is not None and name in x]
        if stack:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
                out[name] = np.nanmean(np.stack(stack), axis=0)
    return out


def detect_boundaries(bscan: np.ndarray, feature_map: np.ndarray, *, median_size: int = 5,
                      refine: bool = True, min_separation: float | None = None,
                      tol: float | None = None, max_gap: int | None = None,
                      prepared: dict[str, np.ndarray] | None = None,
                      prior: Mapping[str, np.ndarray] | None = None,
                      params: PathParams | None = None,
                      edges: np.ndarray | None = None, inner: bool = False,
                      layer_params: LayerParams | None = None) -> dict[str, np.ndarray]:
    """ILM and RPE rows (float32, (W,), 0 = top, NaN where missing) of one b-scan.

    ``bscan``: (H, W) any dtype/range (display domain: log-transform linear vendor data first);
    ``feature_map``: (H, W), e.g. ``Denoiser.feature_maps(bscan, stage, [channel])[0]``.
    ``refine=False`` gives stage one alone (the paper's skeleton lines, cleaned);
    ``min_separation``, ``tol``, ``max_gap`` tune stage one (:func:`skeleton_boundaries`);
    ``prior``: lines of a neighbouring b-scan; ``params``: stage two's :class:`PathParams`;
    ``edges``: the b-scan whose gradients stage two follows (default ``bscan``; the model's input
    rather than its denoised output keeps the lines independent of the model);
    ``inner=True`` adds the six inner boundaries of :mod:`.layers` (``INNER_NAMES``: RNFL, IPL,
    INL, OPL, PR1, PR2; needs ``refine``) found between ILM and BM (``layer_params`` tunes them).
    """
    bscan = check_image(bscan, (2,))
    prep = prepare_bscan(bscan) if prepared is None else prepared
    kw: dict[str, Any] = dict(median_size=median_size, min_separation=min_separation, tol=tol,
                              max_gap=max_gap, prepared=prep)
    if not refine:
        if inner:
            raise ValueError("inner boundaries need refine=True")
        return skeleton_boundaries(bscan, feature_map, refine=False, **kw)
    stage_one = skeleton_boundaries(bscan, feature_map, refine=False, **kw)
    unit = prep["unit"] if edges is None else prepare_bscan(edges)["unit"]
    lines = refine_paths(unit, combine_priors(stage_one, prior), params)
    # a flat b-scan has no edges to find, and an RPE at or above the ILM is no retina: no lines there
    with np.errstate(invalid="ignore"):
        keep = support_columns(prep["unit"], feature_map) & (lines["RPE"] > lines["ILM"]) & (not is_flat(bscan))
    out = {}
    for name in BOUNDARY_NAMES:
        out[name] = np.where(keep, lines[name], np.nan).astype(np.float32)
    if inner:
        layer_params = layer_params or LayerParams()
        # the ONL and the RPE band share their smoothing by default: filter the b-scan once
        shared = layer_params.onl_sigma == (params or PathParams()).band_sigma
        found = inner_boundaries(unit, out["ILM"], out["RPE"], layer_params,
                                 onl_smooth=lines["band_smooth"] if shared else None)
        out.update({name: found[name].astype(np.float32) for name in INNER_NAMES})
    return out


def detect_checked(bscan: np.ndarray, feature_map: np.ndarray,
                   previous: Mapping[str, np.ndarray] | None = None, *, edges: np.ndarray | None = None,
                   **kwargs: Any) -> dict[str, np.ndarray]:
    """:func:`detect_boundaries` with ``previous`` (a neighbour's lines) as prior, plus
    ``doubtful`` (W,) from the plausibility check (:func:`~.checks.doubtful_ascans`)."""
    bscan = check_image(bscan, (2,))
    prep = prepare_bscan(bscan)
    lines = detect_boundaries(bscan, feature_map, prepared=prep, prior=previous, edges=edges, **kwargs)
    grad = prep["grad"] if edges is None else prepare_bscan(edges)["grad"]
    return {**lines, "doubtful": doubtful_ascans(grad, lines["ILM"].astype(np.float64),
                                                 lines["RPE"].astype(np.float64))}


def iter_detect(volume: np.ndarray, feature_map: FeatureMaps, **kwargs: Any
                ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(index, {"ILM", "RPE", "doubtful"})`` per b-scan of a (N, H, W) volume (or one
    (H, W) b-scan), each b-scan using the previous one's lines as a prior.

    ``feature_map`` is an (N, H, W) array, or a function ``(index, bscan) -> (H, W)`` so that maps
    are computed lazily (e.g. by a denoiser) one b-scan at a time.
    """
    vol = check_image(volume)
    vol = vol[None] if vol.ndim == 2 else vol
    previous = None
    for i, bscan in enumerate(vol):
        fmap = feature_map(i, bscan) if callable(feature_map) else np.asarray(feature_map).reshape(vol.shape)[i]
        previous = detect_checked(bscan, fmap, previous, **kwargs)
        yield i, previous


def iter_stacked(items: Iterator[tuple[int, dict[str, np.ndarray]]], n: int, w: int
                 ) -> Steps[dict[str, np.ndarray]]:
    """Stack per-b-scan results into ILM/RPE (and inner boundaries, when found) float32 (N, W) and
    doubtful bool (N, W), yielding ``(done, n)`` (first ``(0, n)``, then per b-scan) and returning
    the stacked dict."""
    out = {name: np.full((n, w), np.nan, np.float32) for name in BOUNDARY_NAMES}
    out["doubtful"] = np.zeros((n, w), bool)
    yield 0, n
    for i, lines in items:
        for name in INNER_NAMES:
            if name in lines and name not in out:
                out[name] = np.full((n, w), np.nan, np.float32)
        for name in (*BOUNDARY_NAMES, *(k for k in INNER_NAMES if k in lines), "doubtful"):
            out[name][i] = lines[name]
        yield i + 1, n
    return out


def detect_volume(volume: np.ndarray, feature_map: FeatureMaps, *, progress: ProgressFn = None,
                  cancel: CancelFn = None, **kwargs: Any) -> dict[str, np.ndarray]:
    """ILM and RPE of every b-scan: float32 (N, W) (eyepy's layer-height layout) + ``doubtful``."""
    vol = check_image(volume)
    n = 1 if vol.ndim == 2 else vol.shape[0]
    return drive(iter_stacked(iter_detect(vol, feature_map, **kwargs), n, vol.shape[-1]), progress, cancel)


def iter_model_boundaries(data: np.ndarray, denoiser: Any, stage: str, channel: int, *,
                          use_denoised: bool | None = None, **kwargs: Any
                          ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(index, {"ILM", "RPE", "doubtful"})`` per b-scan of ``data`` using ``denoiser``'s
    feature map ``(stage, channel)``. The b-scan side of the product and of the gradients is the
    denoised b-scan when ``use_denoised`` (default: when the model is trained), else the input."""
    use_denoised = bool(denoiser.trained) if use_denoised is None else bool(use_denoised)
    vol = check_image(data)
    vol = vol[None] if vol.ndim == 2 else vol
    # every b-scan mapped to the model's input as in a Denoise run of the volume (a dim b-scan of
    # 12-bit data alone has 10 bits), the levels measured over the b-scans detected: a flat filler
    # b-scan (no-data) would set the others'; None where the model maps each b-scan by its own range
    flat = [is_flat(raw) for raw in vol]
    detected = vol if not any(flat) else vol[[not f for f in flat]]  # a copy only when some are flat
    levels = denoiser.volume_levels(detected) if len(detected) and hasattr(denoiser, "volume_levels") else None
    mapped = {} if levels is None else {"levels": levels}

    previous = None
    for i, raw in enumerate(vol):
        if flat[i]:  # blank: no lines, and the next b-scan keeps the last prior
            names = BOUNDARY_NAMES + (INNER_NAMES if kwargs.get("inner") else ())
            w = raw.shape[-1]
            yield i, {**{n: np.full(w, np.nan, np.float32) for n in names}, "doubtful": np.zeros(w, bool)}
            continue
        fmap = np.asarray(denoiser.feature_maps(raw, stage, [int(channel)], **mapped), dtype=np.float32)[0]
        bscan = np.asarray(denoiser.denoise(raw, **mapped), dtype=np.float32) if use_denoised else raw
        previous = detect_checked(bscan, fmap, previous, **kwargs)
        yield i, previous


def iter_boundaries(data: np.ndarray, denoiser: Any, stage: str | None = None, channel: int | None = None, *,
                    use_denoised: bool | None = None, calibration: Mapping[str, Any] | None = None,
                    refine: bool = True, **kwargs: Any) -> Generator[Step, None, dict[str, Any]]:
    """Boundaries of a b-scan or volume with a denoiser, step by step (what the widget runs).

    Without ``stage``/``channel`` the model config's ``boundary_channel`` is used, or calibrated on
    simulated b-scans (``calibration``: keyword arguments of :func:`iter_calibrate_boundary_channel`;
    in memory only) when the config has none. Yields ``(done, total, message)``: ``(0, N, ...)`` per
    calibration step, then ``(0, N)`` and one step per b-scan; stop iterating to cancel. Returns
    ``{"boundaries": {"ILM", "RPE", "doubtful"} (N, W), "stage", "channel", "how", "refine"}``.
    """
    vol = check_image(data)
    n = 1 if vol.ndim == 2 else vol.shape[0]
    how = "chosen by the user"
    if stage is None or channel is None:
        chosen = recorded_channel(denoiser)
        how = (getattr(denoiser.config, "boundary_channel", None) or {}).get("how", "model config")
        if chosen is None:
            message = "calibrating the boundary channel on simulated b-scans"
            choice = yield from map_steps(iter_calibrate_boundary_channel(denoiser, **(calibration or {})),
                                          lambda _: (0, n, message))
            chosen, how = (choice["stage"], choice["channel"]), choice["how"]
        stage = chosen[0] if stage is None else stage
        channel = chosen[1] if channel is None else channel
    items = iter_model_boundaries(vol, denoiser, stage, channel, use_denoised=use_denoised, refine=refine, **kwargs)
    lines = yield from map_steps(iter_stacked(items, n, vol.shape[-1]), lambda s: (s[0], s[1], f"b-scan {s[0]}/{s[1]}"))
    return {"boundaries": lines, "stage": stage, "channel": int(channel), "how": how, "refine": refine}


def model_boundaries(data: np.ndarray, denoiser: Any, stage: str | None = None,
                     channel: int | None = None, *, use_denoised: bool | None = None,
                     progress: ProgressFn = None, cancel: CancelFn = None, **kwargs: Any
                     ) -> dict[str, np.ndarray]:
    """ILM/RPE (N, W) and ``doubtful`` for a b-scan or volume with a denoiser (what the CLI calls):
    :func:`iter_boundaries` with ``progress(done, total)`` and ``cancel()`` checked between steps.

    The denoiser should be the boundary model, ``get_denoiser(boundary_weights(weights))``
    (:func:`napari_hdcyclegan.model.choice.boundary_weights`: ``spectralis-sim`` for "auto", as the
    CLI and the widget use it): the denoising models' feature maps can put the ILM in the vitreous
    noise (valid.vol: 169 px off with ``spectralis-real``, 13 px with ``spectralis-sim``).
    """
    steps = iter_boundaries(data, denoiser, stage, channel, use_denoised=use_denoised, **kwargs)
    return drive(map_steps(steps, lambda s: (s[0], s[1])), progress, cancel)["boundaries"]
