"""Model directories: ``config.json`` + ``model.safetensors``; loading never unpickles code.

Keys in ``model.safetensors``: ``G_L.*`` (HN -> LN, what inference needs), and for training
checkpoints also ``G_H.*`` (LN -> HN) and ``D.*`` (shared discriminator).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HDCycleGANError
from ..intensity import DEFAULT_NORMALISATION
from ..io.atomic import atomic_output
from .layout import CONFIG_FILE, SHIPPED_DIR, WEIGHTS_FILE, shipped_models
from .networks import Discriminator, Generator
from .registry import find_user_model, user_models

FORMAT = "hdcyclegan-model"
FORMAT_VERSION = 1
PARTS = ("G_L", "G_H", "D")
#: Accepted ranges of the integer architecture fields (larger ones cannot be built on any machine).
_INT_FIELDS = {"generator_width": (1, 512), "n_res": (0, 64), "discriminator_width": (1, 512),
               "discriminator_levels": (1, 12)}
_BOOL_FIELDS = ("residual", "trained")
#: Largest ``lateral_sigma`` (pixels) a config or a caller may ask for.
MAX_LATERAL_SIGMA = 16.0
_STR_FIELDS = ("name", "description")
_NORMALISATION_METHODS = ("percentile", "dtype")


def valid_lateral_sigma(value: object) -> bool:
    """Whether ``value`` is a usable ``lateral_sigma``: a number (not a bool) from 0 to
    :data:`MAX_LATERAL_SIGMA` pixels; each caller reports a bad one in its own error type."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_LATERAL_SIGMA


class CheckpointError(HDCycleGANError, ValueError):
    """A model directory or file that is missing, truncated, corrupt or does not match its config."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class ModelConfig:
    """Everything needed to rebuild the networks and to use them on new data."""

    generator_width: int = 16
    n_res: int = 6
    #: Generator output = input + correction (see :class:`Generator`); False is the paper's table.
    residual: bool = False
    discriminator_width: int = 16
    discriminator_levels: int = 7
    #: Robust percentiles mapping each b-scan to [0, 1]; ``log_input`` applies the OCT display
    #: transform first (linear-intensity vendor data).
    normalisation: dict[str, Any] = field(
        default_factory=lambda: dict(DEFAULT_NORMALISATION)
    )
    boundary_channel: dict[str, Any] | None = None
    #: Gaussian smoothing of the output across A-scans (pixels; 0 = none): see ``networks.lateral_smooth``.
    lateral_sigma: float = 0.0
    name: str = "untrained"
    description: str = ""
    trained: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str | os.PathLike = CONFIG_FILE) -> ModelConfig:
        if data.get("format") != FORMAT:
            raise CheckpointError(path, f"not a {FORMAT} config (format={data.get('format')!r})")
        version = data.get("format_version", 0)
        if not _is_int(version):
            raise CheckpointError(path, f"format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(path, f"format_version {data['format_version']} is newer than this package")
        _check_types(data, path)
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:  # pragma: no cover - dataclass only raises on unknown keys
            raise CheckpointError(path, f"invalid config: {exc}") from exc

    def build(self, part: str) -> nn.Module:
        """A freshly initialised network for ``part`` (``G_L``, ``G_H`` or ``D``)."""
        if part in ("G_L", "G_H"):
            return Generator(self.generator_width, self.n_res, self.residual)
        if part == "D":
            return Discriminator(self.discriminator_width, self.discriminator_levels)
        raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")


def _is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON ``true`` is not a width)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise CheckpointError for config values of the wrong type or out of range (e.g. width "16")."""
    for key, (lo, hi) in _INT_FIELDS.items():
        if key in data and not (_is_int(data[key]) and lo <= data[key] <= hi):
            raise CheckpointError(path, f"{key} must be an integer from {lo} to {hi}, got {data[key]!r}")
    for key in _BOOL_FIELDS:
        if key in data and not isinstance(data[key], bool):
            raise CheckpointError(path, f"{key} must be true or false, got {data[key]!r}")
    for key in _STR_FIELDS:
        if key in data and not isinstance(data[key], str):
            raise CheckpointError(path, f"{key} must be a string, got {data[key]!r}")
    sigma = data.get("lateral_sigma", 0.0)
    if not valid_lateral_sigma(sigma):
        raise CheckpointError(path, f"lateral_sigma must be a number from 0 to {MAX_LATERAL_SIGMA:g} (pixels), "
                                    f"got {sigma!r}")
    for key in ("provenance", "boundary_channel"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise CheckpointError(path, f"{key} must be a JSON object, got {data[key]!r}")
    if "normalisation" in data:
        _check_normalisation(data["normalisation"], path)


def _check_normalisation(norm: Any, path: str | os.PathLike) -> None:
    """The ``normalisation`` block: a known method, numeric percentiles, ``dim_median`` and
    ``floor_percentile``, boolean ``log_input``."""
    if not isinstance(norm, dict) or norm.get("method", "percentile") not in _NORMALISATION_METHODS:
        raise CheckpointError(path, f"normalisation must be an object with method one of "
                                    f"{_NORMALISATION_METHODS}, got {norm!r}")
    for key in ("low", "high"):
        value = norm.get(key, 50.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise CheckpointError(path, f"normalisation {key} must be a percentile from 0 to 100, got {value!r}")
    level = norm.get("dim_median", 0.5)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level <= 1:
        raise CheckpointError(path, f"normalisation dim_median must be a level above 0 and at most 1, got {level!r}")
    floor = norm.get("floor_percentile", 0.0)
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor < 50:
        raise CheckpointError(path, f"normalisation floor_percentile must be a percentile from 0 to below 50, "
                                    f"got {floor!r}")
    if not isinstance(norm.get("log_input", False), bool):
        raise CheckpointError(path, f"normalisation log_input must be true or false, got {norm['log_input']!r}")


def resolve_model_dir(weights: str | os.PathLike) -> Path:
    """A shipped or user model's name, or a model directory (or its ``config.json``/weights file).

    Parameters
    ----------
    weights : str or os.PathLike

    Returns
    -------
    Path
        The model directory.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    path = Path(weights).expanduser()
    if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if path.is_dir():
        return path
    if str(weights) in shipped_models():
        return SHIPPED_DIR / str(weights)
    user = find_user_model(str(weights))
    if user is not None:
        return user
    names = ", ".join(shipped_models() + user_models()) or "none"
    raise CheckpointError(weights, f"no such model directory, shipped or user model (known: {names})")


def read_config(model_dir: str | os.PathLike) -> ModelConfig:
    """Parse ``config.json`` of a model directory, with a clear error on any problem.

    Parameters
    ----------
    model_dir : str or os.PathLike

    Returns
    -------
    ModelConfig

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(path, "missing config.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"unreadable or corrupt JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(path, "config must be a JSON object")
    return ModelConfig.from_json(data, path)


def read_tensors(model_dir: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load ``model.safetensors`` (no pickle) into float32 CPU tensors.

    Parameters
    ----------
    model_dir : str or os.PathLike

    Returns
    -------
    dict of str to torch.Tensor
        Keys ``"<part>.<parameter>"``.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(model_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(path, "missing model.safetensors")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"truncated or corrupt safetensors file ({exc})") from exc
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_part(config: ModelConfig, tensors: dict[str, torch.Tensor], part: str,
              path: str | os.PathLike) -> nn.Module:
    """Build ``part`` from ``config`` and fill it from ``tensors`` (strict key and shape check).

    Parameters
    ----------
    config : ModelConfig
        The architecture.
    tensors : dict of str to torch.Tensor
        From :func:`read_tensors`.
    part : {"G_L", "G_H", "D"}
        Which network.
    path : str or os.PathLike
        The weights file, named in errors.

    Returns
    -------
    torch.nn.Module
        In eval mode.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    prefix = part + "."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(path, f"no weights for {part} in the file")
    net = config.build(part)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            path, f"{part} does not match config.json: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise CheckpointError(
                path, f"{part}.{key} has shape {tuple(tensor.shape)}, config expects {tuple(expected[key].shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(path, f"{part}.{key} holds NaN or infinite weights (a diverged or corrupt model)")
    net.load_state_dict(state)
    return net.eval()


def load_model(weights: str | os.PathLike, parts: tuple[str, ...] = ("G_L",)
               ) -> tuple[dict[str, nn.Module], ModelConfig]:
    """Load ``parts`` of a model directory or shipped model; returns ``({part: module}, config)``.

    Parameters
    ----------
    weights : str or os.PathLike
        As for :func:`resolve_model_dir`.
    parts : tuple of str
        Networks to build (``"G_L"``, ``"G_H"``, ``"D"``).

    Returns
    -------
    tuple
        ``({part: module}, config)``.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    model_dir = resolve_model_dir(weights)
    config = read_config(model_dir)
    tensors = read_tensors(model_dir)
    path = model_dir / WEIGHTS_FILE
    return {p: load_part(config, tensors, p, path) for p in parts}, config


def save_model(model_dir: str | os.PathLike, nets: dict[str, nn.Module], config: ModelConfig,
               half: bool = False) -> Path:
    """Write ``config.json`` and ``model.safetensors`` atomically; ``half`` stores float16.

    Parameters
    ----------
    model_dir : str or os.PathLike
        Created if needed.
    nets : dict of str to torch.nn.Module
        Part name to network (a DistributedDataParallel wrapper is unwrapped).
    config : ModelConfig
    half : bool
        Store floating-point tensors as float16.

    Returns
    -------
    Path
        ``model_dir``.
    """
    from safetensors.torch import save_file

    out = Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for part, net in nets.items():
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")
        module = getattr(net, "module", net)  # unwrap DistributedDataParallel
        for key, value in module.state_dict().items():
            value = value.detach().to("cpu").contiguous()
            if half and value.is_floating_point():
                value = value.half()
            tensors[f"{part}.{key}"] = value
    with atomic_output(out / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp))
    text = json.dumps(config.to_json(), indent=2, sort_keys=True)
    with atomic_output(out / CONFIG_FILE) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out
