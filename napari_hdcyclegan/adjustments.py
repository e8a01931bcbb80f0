"""What a model's normalisation asks to change in each b-scan before the generator, undone after it.

Two optional keys of a model config's ``normalisation``, both for scans unlike the model's training scans
in a way that the network would otherwise read as noise: ``floor_percentile`` takes a raised (grey)
background down to black (:func:`floor_offset`), ``dim_median`` lifts a dim b-scan to the training scans'
level (:func:`dim_gain`). :func:`lift` applies both to a [0, 1] batch, :func:`lower` undoes them on the
generator's output; ``Denoiser`` records them per b-scan in its provenance (``floor_offsets``, ``dim_gains``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["DIM_TOLERANCE", "MAX_DIM_GAIN", "dim_gain", "floor_offset", "lift", "lower"]

#: Largest gain :func:`dim_gain` applies, and how much dimmer than the model's level a b-scan must be.
MAX_DIM_GAIN = 2.0
DIM_TOLERANCE = 0.1


def dim_gain(unit: torch.Tensor, normalisation: Mapping[str, Any]) -> torch.Tensor | None:
    """Per b-scan gain that lifts a dim (B, H, W) [0, 1] batch to the model's ``dim_median`` (or None).

    A model trained on one scanner's exports can learn the noise in absolute grey levels: the same
    frames exported 30 % dimmer lose 2.3 dB with ``bioptigen-duke``. With ``dim_median`` in its
    normalisation (the median [0, 1] level of its training b-scans), a b-scan whose median is more than
    :data:`DIM_TOLERANCE` below it is multiplied by ``dim_median / median`` (at most
    :data:`MAX_DIM_GAIN`) before the generator and divided by the same gain after it; b-scans at or
    above the level are left exactly as they are. Returns (B, 1, 1) gains, or None when the model has
    no ``dim_median`` or no b-scan of the batch is dim.
    """
    level = normalisation.get("dim_median")
    if not level:
        return None
    median = unit.flatten(1).median(dim=1).values.clamp_min(1e-6)
    gain = (float(level) / median).clamp(1.0, MAX_DIM_GAIN)
    gain = torch.where(gain > 1.0 + DIM_TOLERANCE, gain, torch.ones_like(gain))
    if bool((gain == 1.0).all()):
        return None
    return gain[:, None, None]


def floor_offset(unit: torch.Tensor, normalisation: Mapping[str, Any]) -> torch.Tensor | None:
    """Per b-scan offset that takes the raised background of a (B, H, W) [0, 1] batch down to 0 (or None).

    A model trained on exports whose background (the noise floor around the tissue) is black reads a grey
    one as a cue for heavy noise: on simulated scans averaged over 36-90 frames with the floor shown at 0.14-0.26
    of the range, ``spectralis-real`` erased fine structure and scored 1.9-3.4 dB below the raw scan against
    the truth, and 0.1-4.1 dB above it with the floor taken down (docs/real_training.md, section 39). With
    ``floor_percentile`` in the model's normalisation, each b-scan's value at that percentile is subtracted
    before the generator (the few values below it clip to 0) and added back after. A b-scan with black pixels
    at that percentile, as every training scan has, is left exactly as it is; on a noisy b-scan the percentile
    lies deep in the noise, so the shift is small. The percentile is taken over every pixel: black padding or
    NaN pixels (0 in ``unit``) over that share of a b-scan leave it as it is. Returns (B, 1, 1) offsets, or None
    when the model has no ``floor_percentile`` or no b-scan of the batch has a raised floor.
    """
    q = normalisation.get("floor_percentile")
    if not q:
        return None
    flat = unit.flatten(1)
    k = max(1, int(np.ceil(float(q) / 100.0 * flat.shape[1])))
    try:
        offset = flat.kthvalue(k, dim=1).values  # kthvalue, not quantile: no size limit on large batches
    except NotImplementedError:  # a device without kthvalue (MPS)
        offset = flat.sort(dim=1).values[:, k - 1]
    if not bool((offset > 0).any()):
        return None
    return offset[:, None, None]  # a [0, 1] batch: never below 0


def lift(unit: torch.Tensor, normalisation: Mapping[str, Any]
         ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A (B, H, W) [0, 1] batch as the generator takes it: a raised background taken down
    (:func:`floor_offset`), then a dim b-scan lifted (:func:`dim_gain`); with the gain and the offset
    (None: not applied)."""
    offset = floor_offset(unit, normalisation)
    if offset is not None:
        unit = (unit - offset).clamp_min_(0.0)  # nothing goes above 1 by a subtraction
    gain = dim_gain(unit, normalisation)
    if gain is not None:
        unit = (unit * gain).clamp_(0.0, 1.0)
    return unit, gain, offset


def lower(y: torch.Tensor, gain: torch.Tensor | None, offset: torch.Tensor | None) -> torch.Tensor:
    """The generator's output ``y`` back in the input's [0, 1] units: :func:`lift` undone."""
    if gain is not None:
        y = y / gain
    return y if offset is None else (y + offset).clamp_(0.0, 1.0)
