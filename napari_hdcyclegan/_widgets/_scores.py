"""Helpers of the compare widget: scoring b-scans in a worker, row labels, slices under the slider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import bscan_under_slider

if TYPE_CHECKING:
    import napari
    from napari.layers import Image


def score_bscans(images: dict[str, np.ndarray], reference: np.ndarray | None
                 ) -> dict[str, dict[str, float]]:
    """CNR/MSR of every 2D image (masks from ``reference`` or the raw one) and PSNR/SSIM vs it."""
    from napari_hdcyclegan.metrics import cnr, msr, score_methods, signal_background_masks

    if reference is not None:
        return score_methods(images, reference, align=True)
    signal, background = signal_background_masks(images["raw"])
    return {name: {"CNR": cnr(img, signal, background), "MSR": msr(img, signal)}
            for name, img in images.items()}


def score_or_reason(images: dict[str, np.ndarray], reference: np.ndarray | None
                    ) -> tuple[dict[str, dict[str, float]], str]:
    """:func:`score_bscans` for a worker; returns (scores, reason they are missing or "")."""
    try:
        return score_bscans(images, reference), ""
    except ValueError as exc:  # e.g. no retina found in this b-scan: not worth a notification
        return {}, str(exc)


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
