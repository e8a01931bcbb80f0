"""Atomic outputs: write to a hidden temporary name in the target folder, then rename over the target.

Files go through :func:`atomic_output`; whole folders (checkpoints, published models) are written
under a temporary name and swapped in by :func:`replace_folder`.

An interrupted, killed or failed write never leaves half a file and never destroys the previous
output: the temporary file is removed on every exit path (exceptions, Ctrl-C, and SIGTERM once the
CLI turns it into an exception). A write that fails for want of space or permission is raised as
:class:`~napari_hdcyclegan.errors.OutputWriteError` naming the output, not its temporary file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

from ..errors import OutputWriteError

__all__ = ["atomic_output", "check_writable", "free_bytes", "replace_folder", "temp_name"]

#: Errors without a file name that can only come from the write (an input read names its file).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})
#: numpy's ``tofile`` (what tifffile writes pages with) reports a short write without an errno.
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")


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
    try:
        tmp = temp_name(target)
    except OSError as exc:
        _raise_named(exc, target, None)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600
        os.replace(tmp, target)
    except OSError as exc:
        _raise_named(exc, target, tmp)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable(folder: str | os.PathLike, output: str | os.PathLike) -> None:
    """Raise :class:`OutputWriteError` naming ``output`` unless a file can be created in ``folder``.

    A probe file is created and removed at once: ``os.access`` says yes to root on read-only
    pseudo file systems (``/sys``) and knows nothing of ACLs or quotas.
    """
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputWriteError(f"{output}: {reason} (cannot create files in {folder})") from exc
    os.close(fd)
    os.unlink(probe)


def write_error(exc: OSError, target: Path, tmp: Path | None) -> OutputWriteError | None:
    """What ``exc``, raised while ``tmp`` was written for ``target`` (or, for ``tmp`` None, created),
    means for the user: an :class:`OutputWriteError` naming ``target``, or None when it is not about
    the output (an input file that fails to read while pages are streamed names that file)."""
    if isinstance(exc, OutputWriteError):
        return exc
    if tmp is not None and exc.filename is not None and str(exc.filename) not in (str(target), str(tmp)):
        return None
    short = _SHORT_WRITE.search(str(exc))
    if short:
        requested, written = (int(n) for n in short.groups())
        full = free_bytes(target.parent) < requested - written
        what = os.strerror(errno.ENOSPC) if full else "write failed"
        reason = f"{what} ({written} of {requested} bytes of a block written)"
        code: int | None = errno.ENOSPC if full else None
    elif exc.errno is not None and (exc.filename is not None or exc.errno in _WRITE_ERRNOS):
        reason, code = exc.strerror or os.strerror(exc.errno), exc.errno
    else:
        return None
    err = OutputWriteError(f"{target}: {reason}")
    err.errno = code
    return err


def _raise_named(exc: OSError, target: Path, tmp: Path | None) -> NoReturn:
    """Raise :func:`write_error` for ``exc``, or ``exc`` itself when it is not about the output."""
    err = write_error(exc, target, tmp)
    if err is None or err is exc:
        raise exc
    raise err from exc


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes free in ``folder``'s file system (a large number where that cannot be told)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


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
