"""Append-only CSV logs (training losses, validation scores)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from napari_hdcyclegan.io.atomic import atomic_output


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


def drop_rows_after(path: Path, step: int) -> int:
    """Drop the rows of ``path`` logged after ``step`` (a run killed after its last checkpoint logged
    steps that the resumed run logs again) and a last row the kill cut off; returns how many were
    dropped. Rewritten atomically."""
    if not path.exists():
        return 0
    text = path.read_text()
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    if not text.endswith("\n") and body:
        body = body[:-1] + [[]]  # a row cut off by the kill: "1" of "13,..." must not pass for step 1
    at = header.index("step") if "step" in header else None
    kept = [r for r in body if len(r) == len(header) and (at is None or float(r[at]) <= step)]
    if len(kept) == len(body):
        return 0
    with atomic_output(path) as tmp, tmp.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])
    return len(body) - len(kept)
