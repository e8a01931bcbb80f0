"""Models that stay loaded on their device between calls: a small keyed least-recently-used cache.

The widgets, the CLI and evaluation all ask :func:`napari_hdcyclegan.engine.get_denoiser` for
models. A single slot made them evict each other (Denoise and Compare on two models reloaded on
every run); a few slots keep the recently used models resident, and the least recently used one
is let go (its cached GPU memory returned to the driver once nothing uses it) before a new one is
loaded into a full cache.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch

__all__ = ["DEFAULT_CAPACITY", "ResidentModels", "free_model"]

#: Models kept loaded at once (e.g. the Denoise widget's and the Compare widget's).
DEFAULT_CAPACITY = 2

T = TypeVar("T")


def free_model(model: object) -> None:
    """Return the GPU memory cached for ``model``'s device to the driver once the cache has let it go.

    Its weights are left where they are: a run still using the model (another widget's worker) or a
    caller holding it goes on working, and the weights are freed with the last reference (moving
    them to the CPU here broke such a run on a GPU with a device mismatch).
    """
    device = getattr(model, "device", None)
    gc.collect()
    if device is not None and getattr(device, "type", "") == "cuda":
        torch.cuda.empty_cache()


class ResidentModels(Generic[T]):
    """A thread-safe keyed LRU of loaded models.

    Parameters
    ----------
    capacity : int
        How many models stay loaded at once (at least 1).
    free : callable
        Called with each model that leaves the cache (default :func:`free_model`).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, free: Callable[[T], None] = free_model) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._free = free
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The model stored under ``key``, or ``load()`` stored under it (freeing the oldest first).

        Parameters
        ----------
        key : hashable
            Identity of the model on its device (e.g. weights path, file stamp, device).
        load : callable
            Builds the model when ``key`` is not resident; runs under the cache's lock, so two
            threads asking for the same model load it once.

        Returns
        -------
        The resident model, now the most recently used.
        """
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            while len(self._items) >= self.capacity:
                _, old = self._items.popitem(last=False)
                self._free(old)
            model = load()
            self._items[key] = model
            return model

    def models(self) -> list[T]:
        """The resident models, least recently used first."""
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        """Free every resident model."""
        with self._lock:
            while self._items:
                _, old = self._items.popitem(last=False)
                self._free(old)

    def __len__(self) -> int:
        return len(self._items)
