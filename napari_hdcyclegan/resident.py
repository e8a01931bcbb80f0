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
    """What the cache does with a model it lets go: nothing to the model itself. Its weights stay on
    their device (a run still using it, another widget's worker, goes on; moving them to the CPU broke
    such a run on a GPU), and the cache returns the GPU memory once its own references are gone."""


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
            if len(self._items) >= self.capacity:
                self._let_go(len(self._items) - self.capacity + 1)
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
            self._let_go(len(self._items))

    def _let_go(self, n: int) -> None:
        """Drop the ``n`` least recently used models, then return the GPU memory they held (callers still
        using one keep it: the cache's own references are gone before the memory is returned)."""
        gone = [self._items.popitem(last=False)[1] for _ in range(n)]
        cuda = any(getattr(getattr(m, "device", None), "type", "") == "cuda" for m in gone)
        while gone:
            self._free(gone.pop(0))
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    def __len__(self) -> int:
        return len(self._items)
