"""What a view of one b-scan needs of its volume to show what the volume run gives: the model ``auto``
chooses for the whole volume and the levels its input mapping uses (the live preview, Compare's current
b-scan, the feature maps), measured in a worker and kept between requests."""

from __future__ import annotations

import json
import weakref
from typing import Any

import numpy as np


class VolumeFacts:
    """What a view measured of one layer's data (the automatic model choice, the levels per input
    mapping), kept between its requests so that a volume is not measured again for each; another data
    object starts over."""

    def __init__(self) -> None:
        self._data: Any = None  # a weak reference to the data the facts belong to
        self._facts: dict[str, Any] = {}

    def get(self, data: Any) -> dict[str, Any]:
        """The facts known of ``data`` ({} for other data)."""
        same = data is not None and self._data is not None and self._data() is data
        return dict(self._facts) if same else {}

    def update(self, data: Any, facts: dict[str, Any]) -> None:
        """Remember ``facts`` of ``data`` (data without weak references: not kept)."""
        if self._data is None or self._data() is not data:
            try:
                self._data, self._facts = weakref.ref(data), {}
            except TypeError:
                return
        self._facts.update(facts)


def volume_model(weights: str, device: str, bscan: Any, volume: Any = None, known: dict[str, Any] | None = None
                 ) -> tuple[Any, Any, tuple[float, float] | None, dict[str, Any]]:
    """For a worker: the denoiser a run over ``volume`` uses (``auto`` chooses for the whole volume;
    for ``bscan`` when there is no volume), why ``auto`` chose it, the volume's levels for its input
    mapping, and ``known`` with what was measured here added (pass it back next time: a
    :class:`VolumeFacts` of the same data spares measuring again).

    Returns
    -------
    denoiser, choice, levels, known
    """
    from napari_hdcyclegan.engine import choose_denoiser, get_denoiser
    from napari_hdcyclegan.model.choice import AUTO

    known = dict(known or {})
    if weights == AUTO and "auto" in known:
        choice = known["auto"]
        denoiser = get_denoiser(choice.weights, device)
    else:
        denoiser, choice = choose_denoiser(weights, device, data=bscan if volume is None else volume)
        if choice is not None and volume is not None:
            known["auto"] = choice
    key = "levels " + json.dumps(denoiser.normalisation, sort_keys=True, default=str)
    if volume is not None and (key not in known or not _covers(known[key], bscan)):
        known[key] = denoiser.volume_levels(volume)  # measured again when the data was edited in place
    return denoiser, choice, known.get(key), known


def _covers(levels: tuple[float, float] | None, bscan: Any) -> bool:
    """True when ``levels`` (None: none used) hold every value of ``bscan``."""
    return levels is None or bool(levels[0] <= float(np.min(bscan)) and float(np.max(bscan)) <= levels[1])
