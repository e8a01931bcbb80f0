"""Atomic outputs: write to a hidden temporary name in the target folder, then rename over the target.

Files go through :func:`atomic_output`; whole folders (checkpoints, published models) are written
under a temporary name and swapped in by :func:`replace_folder`.

An interrupted, killed or failed write never leaves half a file and never destroys the previous
output: the temporary file is removed on every exit path (exceptions, Ctrl-C, and SIGTERM once the
CLI turns it into an exception).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "replace_folder", "temp_name"]


def temp_name(target: str | os.PathLike) -> Path:
    """A new, empty, hidden file beside ``target`` that keeps its suffix (writers pick the format by it).

    Parameters
    ----------
    target : str or os.PathLike
        The file the temporary one will replace.

    Returns
    -------
    Path
        The temporary file (created, empty); the caller removes or renames it.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".part{target.suffix}")
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_output(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` (mode 0644), else it is removed.

    Parameters
    ----------
    target : str or os.PathLike
        The output file.

    Yields
    ------
    Path
        A hidden temporary file beside ``target`` with its suffix.
    """
    target = Path(target)
    tmp = temp_name(target)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_folder(tmp: str | os.PathLike, target: str | os.PathLike, old: str | os.PathLike | None = None
                   ) -> Path:
    """Swap the complete folder ``tmp`` in as ``target``; a kill never leaves half a folder at ``target``.

    The previous ``target`` (if any) is renamed to ``old`` first and removed after the swap, so a kill
    between the two renames leaves it whole at ``old``.

    Parameters
    ----------
    tmp : str or os.PathLike
        The new folder, fully written, beside ``target``.
    target : str or os.PathLike
        Where it goes.
    old : str or os.PathLike, optional
        Where the previous ``target`` waits during the swap (default ``<target>.old``).

    Returns
    -------
    Path
        ``target``.
    """
    tmp, target = Path(tmp), Path(target)
    old = Path(old) if old is not None else target.with_name(f"{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
