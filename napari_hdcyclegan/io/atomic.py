"""Atomic outputs: write to a hidden temporary name in the target folder, then rename over the target.

An interrupted, killed or failed write never leaves half a file and never destroys the previous
output: the temporary file is removed on every exit path (exceptions, Ctrl-C, and SIGTERM once the
CLI turns it into an exception).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_name(target: str | os.PathLike) -> Path:
    """A new, empty, hidden file beside ``target`` that keeps its suffix (writers pick the format by it)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".part{target.suffix}")
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` (mode 0644), else it is removed."""
    target = Path(target)
    tmp = temp_name(target)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
