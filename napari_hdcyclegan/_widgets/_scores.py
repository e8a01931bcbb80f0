"""Helpers of the compare widget: scoring b-scans in a worker, row labels, slices under the slider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import bscan_under_slider

if TYPE_CHECKING:
    import napari
    from napari.layers import Image


def score_bscans(images: dict[str, np.ndarray], reference: np.ndarray | None, data_range: float | None = None
                 ) -> dict[str, dict[str, float]]:
    """CNR/MSR of every 2D image (masks from ``reference`` or the raw one) and PSNR/SSIM vs it, on
    ``data_range`` (default: the reference b-scan's own, :func:`~napari_hdcyclegan.metrics.default_data_range`)."""
    from napari_hdcyclegan.metrics import cnr, msr, score_methods, signal_background_masks

    if reference is not None:
        return score_methods(images, reference, data_range=data_range, align=True)
    signal, background = signal_background_masks(images["raw"])
    return {name: {"CNR": cnr(img, signal, background), "MSR": msr(img, signal)}
            for name, img in images.items()}


def score_or_reason(images: dict[str, np.ndarray], reference: np.ndarray | None, volume: Any = None,
                    known: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, float]], str, dict[str, Any]]:
    """:func:`score_bscans` for a worker, PSNR/SSIM on the data range of the reference's whole
    ``volume`` (one range for every b-scan of it: a dim b-scan of 12-bit data alone has 10 bits),
    measured here unless ``known`` holds it; returns (scores, reason they are missing or "", known)."""
    known = dict(known or {})
    if reference is not None and volume is not None and "data_range" not in known:
        known["data_range"] = volume_data_range(volume)  # read here, off the main thread
    try:
        return score_bscans(images, reference, known.get("data_range")), "", known
    except ValueError as exc:  # e.g. no retina found in this b-scan: not worth a notification
        return {}, str(exc), known


def volume_data_range(volume: Any, chunk: int = 16) -> float:
    """:func:`~napari_hdcyclegan.metrics.default_data_range` of a whole volume, read ``chunk`` b-scans
    at a time (a lazily loaded volume is never held whole): it depends only on the dtype and the
    finite minimum and maximum."""
    from napari_hdcyclegan.metrics import default_data_range

    lo, hi = np.inf, -np.inf
    for start in range(0, volume.shape[0], chunk):
        part = np.asarray(volume[start:start + chunk])
        finite = part[np.isfinite(part)] if part.dtype.kind == "f" else part
        if finite.size:
            lo, hi = min(lo, finite.min()), max(hi, finite.max())
    ends = np.array([lo, hi] if lo <= hi else [], dtype=volume.dtype)
    return default_data_range(ends)


def model_label(metadata: dict[str, Any], fallback: str = "model") -> str:
    """Table row of a model output: the model's name (``fallback`` when the layer records none);
    an untrained fallback says so."""
    provenance = metadata.get("provenance") or {}
    name = str(provenance.get("model") or fallback)
    return name if provenance.get("trained", True) else f"{name} (untrained)"


def made_with(layer: Image, weights: str) -> bool:
    """Whether ``layer`` was made with ``weights`` as the model ships (True when it records no model
    at all); with ``"auto"``, whether ``auto`` chose its model (it chooses the same for the same
    input). A result of an adapted model, or with another lateral smoothing, is not the model's."""
    from napari_hdcyclegan.model.choice import AUTO

    provenance = layer.metadata.get("provenance") or {}
    if not provenance:
        return True
    if "adaptation" in provenance or not _own_smoothing(provenance):
        return False
    if str(weights) == AUTO:
        return "auto_choice" in provenance
    return str(provenance.get("weights")) == str(weights)


def _own_smoothing(provenance: dict[str, Any]) -> bool:
    """Whether a result's lateral smoothing is its model's own (True when the record does not say;
    False when the model to compare with is not found)."""
    from napari_hdcyclegan.errors import HDCycleGANError
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir

    config = provenance.get("config") or {}
    if "lateral_sigma" not in config:
        return True
    used = config["lateral_sigma"]
    try:
        own = read_config(resolve_model_dir(str(provenance.get("weights")))).lateral_sigma
    except (HDCycleGANError, OSError, ValueError):
        return False
    return used == own


def slice_of(layer: Image, viewer: napari.Viewer) -> np.ndarray | None:
    """The 2D b-scan of ``layer`` under the dims slider, or None when the layer does not cover it."""
    data = layer.data
    if layer.ndim == 2:
        return np.asarray(data)
    index = bscan_under_slider(viewer, layer)
    if not 0 <= index < data.shape[0]:
        return None
    return np.asarray(data[index])
