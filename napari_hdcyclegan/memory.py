"""Memory helpers of the engine: allocation failures, available memory, releasing memory-mapped pages."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import torch


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
