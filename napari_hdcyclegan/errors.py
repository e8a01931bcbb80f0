"""The project's base exception: what a user can fix (bad input, bad model, bad output path)."""

from __future__ import annotations


class HDCycleGANError(Exception):
    """Base of every error the CLI and the widgets report as one line (not a bug)."""


class InputError(HDCycleGANError, ValueError):
    """An image the denoiser cannot take (rank, size, dtype) or an unusable device or batch size."""


class OutputError(HDCycleGANError, ValueError):
    """An output path or format that cannot hold the result."""


class ModelError(HDCycleGANError, RuntimeError):
    """A model that produced non-finite values (NaN/inf weights or an overflow)."""


class OutputWriteError(OutputError, OSError):
    """An output that could not be written (full disk, no permission), named as the user gave it
    rather than by its hidden temporary file; still an OSError for callers that catch those."""
