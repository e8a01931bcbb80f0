"""Generator feature maps of one b-scan (what :meth:`Denoiser.feature_maps` returns).

A stage's activation is taken after its activation function (docs/conventions.md) on the padded
forward pass, upscaled bilinearly to the padded size and cropped back to the b-scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F

from .model.networks import Generator, pad_to_multiple
from .normalise import check_input, checked_levels, levels_cover


class _Model(Protocol):
    """What the feature maps need of a :class:`~napari_hdcyclegan.engine.Denoiser`."""

    generator: Generator

    @property
    def normalisation(self) -> dict[str, Any]: ...

    def stage_channels(self) -> dict[str, int]: ...

    def _model_units(self, raw: np.ndarray, fixed: tuple[float, float] | None = None) -> torch.Tensor: ...

__all__ = ["probe_stage_channels", "stage_feature_maps"]


def probe_stage_channels(generator: Generator, device: torch.device) -> dict[str, int]:
    """Channels of every stage of ``generator``, in forward order (one 16 x 16 probe pass)."""
    probe = torch.zeros(1, 1, 16, 16, device=device)
    with torch.inference_mode():
        return {name: int(a.shape[1]) for name, a in generator.stages(probe)}


def _channel_index(stage: str, n_channels: int, channels: int | Sequence[int] | None) -> list[int]:
    """The channel indices ``channels`` names (None: all), checked against ``n_channels``."""
    if channels is None:
        return list(range(n_channels))
    index = ([int(cast(int, channels))] if np.isscalar(channels)
             else [int(c) for c in cast(Sequence[int], channels)])
    bad = [c for c in index if not -n_channels <= c < n_channels]
    if bad or not index:
        raise ValueError(f"stage {stage!r} has {n_channels} channels; got channels {channels!r}")
    return index


def stage_feature_maps(denoiser: _Model, bscan: Any, stage: str, channels: int | Sequence[int] | None = None,
                       levels: tuple[float, float] | None = None) -> np.ndarray:
    """Activation after ``stage`` for one b-scan, bilinearly upscaled to it (:meth:`Denoiser.feature_maps`).

    Parameters
    ----------
    denoiser : Denoiser
    bscan : array-like
        One 2D b-scan (raw values; mapped to the model input as ``Denoiser.denoise`` does, the model's
        background offset and dim gain included: ``Denoiser.model_input``).
    stage : str
        A stage of this generator (``denoiser.stage_channels()``; docs/conventions.md).
    channels : int or sequence of int, optional
        None (all), one index or several indices (negative ones count from the end).
    levels : tuple of float, optional
        ``Denoiser.volume_levels`` of the volume the b-scan is part of, as in ``Denoiser.iter_denoise``.

    Returns
    -------
    numpy.ndarray
        float32 (C, H, W), computed in float32 whatever the denoiser's precision says.

    Raises
    ------
    ValueError
        For an unknown stage, a channel index out of range, or input that is not one b-scan
        (``InputError``, a ValueError, also for ``levels`` that do not fit it).
    """
    available = denoiser.stage_channels()  # this network's stages (res1 .. resN for its n_res)
    if stage not in available:
        raise ValueError(f"unknown stage {stage!r}; choose one of {tuple(available)}")
    index = _channel_index(stage, available[stage], channels)
    shape, dtype = check_input(bscan)
    if len(shape) != 2:
        raise ValueError(f"feature_maps needs one 2D b-scan, got shape {shape}")
    raw = np.asarray(bscan)[None]
    fixed = None if levels is None else checked_levels(levels, dtype, denoiser.normalisation)
    if fixed is not None:
        levels_cover(raw, fixed, 0)
    with torch.inference_mode():
        x = denoiser._model_units(raw, fixed)[:, None]
        h, w = x.shape[-2:]
        padded, _ = pad_to_multiple(x, 8)
        act = next(a for name, a in denoiser.generator.stages(padded) if name == stage)
        act = act[:, index].float()
        # Upscale to the padded size, then crop: keeps the geometry of the padded forward pass.
        act = F.interpolate(act, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return act[0, :, :h, :w].cpu().numpy().astype(np.float32, copy=False)
