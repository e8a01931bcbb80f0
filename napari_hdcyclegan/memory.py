"""Memory helpers of the engine: allocation failures, available memory, releasing memory-mapped pages."""

from __future__ import annotations

import mmap
import warnings
from typing import Any

import numpy as np
import torch

#: Peak CPU memory of a forward pass per pixel and generator width unit (measured: 101-109 MB per
#: 496x512 b-scan at width 16, batches of 1 and 4, float32), used to cap CPU batch sizes.
CPU_BYTES_PER_PIXEL = 28
#: Share of the available memory a CPU batch may use.
CPU_MEMORY_SHARE = 0.7


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure (CUDA OOM, CPU allocator, numpy)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return "can't allocate memory" in text or "not enough memory" in text


def short_oom(exc: BaseException) -> str:
    """The allocator's message without its source location."""
    text = " ".join(str(exc).split())
    return text.split("] ")[-1][:160] or type(exc).__name__


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (psutil, a napari dependency), None if unknown."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - napari requires psutil
        return None
    return int(psutil.virtual_memory().available)


def drop_pages(data: Any, start: int, stop: int) -> None:
    """Let the OS drop b-scans ``start:stop`` of a read-only memory-mapped volume from this process.

    They are done with; without this the mapped pages count to the resident memory until the whole
    volume has been touched. Best effort: anything but a C-contiguous read-only ``np.memmap`` is left.
    """
    mm = getattr(data, "_mmap", None)
    if mm is None or getattr(data, "mode", None) != "r" or not hasattr(mm, "madvise"):
        return
    if not getattr(data, "flags", None) or not data.flags.c_contiguous:
        return
    try:
        base = np.frombuffer(mm, np.uint8).ctypes.data
        chunk = data[start:stop]
        first = chunk.ctypes.data - base
        first -= first % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, first, chunk.ctypes.data - base + chunk.nbytes - first)
    except (AttributeError, BufferError, OSError, ValueError):
        pass


def cpu_batch_fit(batch_size: int, hw: tuple[int, ...], width: int, free: int) -> int:
    """The CPU batch size that ``free`` bytes hold: ``batch_size``, or fewer with a RuntimeWarning.

    Parameters
    ----------
    batch_size : int
        The batch size asked for.
    hw : tuple of int
        A b-scan's (height, width).
    width : int
        The generator's width multiplier.
    free : int
        Bytes available (:func:`available_memory`).

    Raises
    ------
    MemoryError
        When not even one b-scan fits.
    """
    per_bscan = CPU_BYTES_PER_PIXEL * hw[0] * hw[1] * width
    fits = int(free * CPU_MEMORY_SHARE // per_bscan)
    if fits < 1:
        raise MemoryError(f"one {hw[0]}x{hw[1]} b-scan needs about {per_bscan / 2**20:.0f} MB on the CPU; "
                          f"only {free / 2**20:.0f} MB are available")
    if batch_size > fits:
        warnings.warn(f"batch size {batch_size} does not fit in {free / 2**20:.0f} MB of available "
                      f"memory: using {fits}", RuntimeWarning, stacklevel=3)
        return fits
    return batch_size


def halved_batch(exc: BaseException, device: Any, hw: tuple[int, ...], used: int) -> int:
    """The batch after an allocation failure ``exc`` at ``used`` b-scans of ``hw`` pixels on
    ``device`` (half, with a warning), or a MemoryError that says one b-scan does not fit."""
    if used == 1:
        raise MemoryError(f"out of memory on {device} for one {hw[0]}x{hw[1]} b-scan "
                          f"({short_oom(exc)}); free memory or use a smaller image") from exc
    batch = max(1, used // 2)
    warnings.warn(f"out of memory on {device}: batch size halved to {batch}", RuntimeWarning, stacklevel=4)
    return batch
