"""Devices and precisions for inference and training: one place that names, checks and picks them.

The engine, the widgets' device choosers, the CLI's ``--device`` and ``--precision`` and training
(``training/fit.py``) all resolve ``"auto"`` and validate names here.
"""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["PRECISIONS", "available_devices", "cpu_has_native_bf16", "resolve_device", "resolve_precision"]

#: Precision choices: ``auto`` picks bf16/fp16 where the device runs them fast, else float32.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def available_devices() -> list[str]:
    """Device choices for the CLI and the widgets.

    Returns
    -------
    list of str
        ``["auto", "cpu", "cuda:0", ...]``, plus ``"mps"`` where Apple's Metal backend is available.
    """
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device that ``device`` names, checked to exist.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` (the first CUDA device if any, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        For an unknown, unsupported or unavailable device (a :class:`ValueError`).
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}; choose one of {available_devices()}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available "
                             f"(choose one of {available_devices()})")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
        return torch.device("cuda", index)
    if dev.type == "mps" and "mps" not in available_devices():
        raise InputError(f"device {device!r} requested but MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {device!r}; choose one of {available_devices()}")
    return dev


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively (AVX512-BF16 / AMX).

    Without it, bf16 convolutions fall back to a slow reference kernel: measured on the project's
    AVX2 CPU, 105 s instead of 0.77 s for one 496x512 b-scan. So ``auto`` uses bf16 on CPU only here.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: bf16 on CUDA where supported (else fp16), float32 elsewhere. On CPUs, even with
        native bf16 convolutions, bf16 was as often slower as faster than float32 (README,
        "Inference speed"), and float32 is the reference: ask for ``bf16`` explicitly.
    device : torch.device

    Returns
    -------
    torch.dtype or None
        None means plain float32 (no autocast).
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None
