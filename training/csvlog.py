"""Append-only CSV logs (training losses, validation scores)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def append_csv(path: Path, row: dict, fieldnames: Sequence[str]) -> None:
    """Append ``row`` to ``path``, writing the header first when the file is new.

    An existing file keeps its own header (a run resumed by newer code that logs more columns stays a
    well-formed CSV; the new columns start with the next new file).
    """
    new = not path.exists()
    if not new:
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), None)
        fieldnames = header or fieldnames
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
