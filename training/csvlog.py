"""Append-only CSV logs (training losses, validation scores)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def append_csv(path: Path, row: dict, fieldnames: Sequence[str]) -> None:
    """Append ``row`` to ``path``, writing the header first when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
