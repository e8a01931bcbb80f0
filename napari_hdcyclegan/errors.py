"""The project's base exception: what a user can fix (bad input, bad model, bad output path).

Catch :class:`HDCycleGANError` for all of them. Besides the classes here, subclasses live beside the
code that raises them: ``napari_hdcyclegan.io.OctReadError`` (a file that cannot be read as OCT),
``napari_hdcyclegan.model.checkpoint.CheckpointError`` (a model folder that cannot be loaded) and
``napari_hdcyclegan.normalise.OutlierError`` (an :class:`InputError`: a few extreme values would set the
intensity mapping). Not among them: ``baselines.MissingExtraError`` (an ImportError: an optional extra
such as ``bm3d`` is not installed) and ``progress.Cancelled`` (a run stopped by its ``cancel()``).
"""

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
