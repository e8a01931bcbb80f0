"""Loading and sharing denoisers: the models the widgets, the CLI and evaluation run.

Models are loaded once per (weights, device) and stay on their device across calls
(:func:`get_denoiser`); a small LRU (:data:`RESIDENT`, :mod:`.resident`) frees the least recently
used one. ``"auto"`` picks a shipped model per input (:mod:`.model.choice`). What a loaded model
does with a volume (batches, intensity mapping, precision, memory, feature maps) is
:class:`~napari_hdcyclegan.denoiser.Denoiser`, re-exported here with the rest of the inference API.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from .denoiser import CPU_BATCH, CUDA_BATCH, Denoiser, default_batch_size, iter_denoised  # noqa: F401 - CPU/CUDA_BATCH: re-exported
from .devices import PRECISIONS, available_devices, cpu_has_native_bf16, resolve_device, resolve_precision
from .loading import UNTRAINED_NAME, UNTRAINED_SEED, cache_key, load_generator, untrained_generator  # noqa: F401 - UNTRAINED_*: re-exported
from .memory import CPU_BYTES_PER_PIXEL, CPU_MEMORY_SHARE, drop_pages  # noqa: F401 - re-exported
from .model.checkpoint import CheckpointError, shipped_models
from .model.choice import AUTO, AVERAGED_MODEL, ModelChoice, resolve_auto
from .normalise import MIN_SIZE
from .progress import Cancelled
from .resident import ResidentModels

__all__ = [
    "DEFAULT_MODEL", "UNTRAINED_NAME", "PRECISIONS", "Cancelled", "CheckpointError", "Denoiser",
    "available_devices", "choose_denoiser", "cpu_has_native_bf16", "default_batch_size", "get_denoiser",
    "iter_denoised", "release",
    "resolve_device", "resolve_precision",
    "RESIDENT", "MIN_SIZE",
]

#: The default weights: "auto" picks a shipped model per input by its noise level (model/choice.py).
DEFAULT_MODEL = AUTO
#: The models that stay loaded between calls (widgets, CLI and evaluation share it).
RESIDENT: ResidentModels[Denoiser] = ResidentModels()


def _untrained(device: str | torch.device) -> Denoiser:
    """The clearly labelled fallback: a seeded, randomly initialised paper-size generator."""
    gen, config, labels = untrained_generator()
    return Denoiser(gen, config, device, **labels)


def _load(weights: str | os.PathLike, device: str | torch.device) -> Denoiser:
    """Load a shipped model or model directory onto ``device``."""
    gen, config, labels = load_generator(weights)
    return Denoiser(gen, config, device, **labels)


def release() -> None:
    """Free every resident model and its (GPU) memory.

    The next :func:`get_denoiser` loads its model again.
    """
    RESIDENT.clear()


def get_denoiser(weights: str | os.PathLike = DEFAULT_MODEL, device: str = "auto", data: Any = None
                 ) -> Denoiser:
    """The resident :class:`Denoiser` for ``weights`` on ``device``, loaded on first use.

    Parameters
    ----------
    weights : str or path-like
        ``"auto"`` (the default): the shipped model that suits ``data`` by its measured noise level
        (:func:`napari_hdcyclegan.model.choice.choose_model`), or the averaged-scan model without
        ``data``. Else a shipped or user model's name, or a model directory.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda[:N]"`` or ``"mps"`` (:func:`resolve_device`).
    data : array-like, optional
        The b-scan or volume to be denoised, for the ``"auto"`` choice.

    Returns
    -------
    Denoiser
        Cached: the same object comes back while weights (and their file) and device stay the
        same. The :data:`RESIDENT` cache keeps the :data:`~napari_hdcyclegan.resident.DEFAULT_CAPACITY`
        most recently used models loaded and frees the oldest before loading another. It is
        shared by every caller, so it does not say why ``"auto"`` chose it: :func:`choose_denoiser`
        returns that with each call.

    Raises
    ------
    CheckpointError
        For a name or directory that holds no readable model.

    Notes
    -----
    While no trained weights for the averaged-scan model are shipped, it falls back to a randomly
    initialised generator (``trained=False``, name :data:`UNTRAINED_NAME`) and warns.
    """
    weights, _ = resolve_auto(weights, data)
    dev = resolve_device(device)
    key = cache_key(weights, dev, shipped_models())
    untrained = key[0] == UNTRAINED_NAME
    denoiser = RESIDENT.get(key, lambda: _untrained(dev) if untrained else _load(weights, dev))
    if untrained:
        warnings.warn(f"no trained weights for {AVERAGED_MODEL!r} are shipped yet: using an "
                      f"{UNTRAINED_NAME} model whose output is NOT a meaningful denoising",
                      UserWarning, stacklevel=2)
    return denoiser


def choose_denoiser(weights: str | os.PathLike = DEFAULT_MODEL, device: str = "auto", data: Any = None
                    ) -> tuple[Denoiser, ModelChoice | None]:
    """:func:`get_denoiser` (same parameters), and why ``"auto"`` chose that model for ``data``.

    Returns
    -------
    denoiser : Denoiser
        The shared resident denoiser.
    choice : ModelChoice or None
        With ``"auto"`` and ``data``: the choice and its reason, for this call only (never stored
        on the shared denoiser, which another caller may be using with another choice); pass it
        on with the result, e.g. ``denoiser.provenance(choice)``.
    """
    weights, choice = resolve_auto(weights, data)
    return get_denoiser(weights, device), choice
