"""npe2 sample data: a small simulated Spectralis-like volume and a real Heidelberg .vol circle scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._reader import BSCAN_SPACING_UM, boundary_layer, nominal_spacing, oct_layers
from .io import AXES_3D, UM, read_oct

DATA_DIR = Path(__file__).resolve().parent / "data"
HEIDELBERG_VOL = DATA_DIR / "heidelberg_circle.vol"


def simulated_volume() -> list[tuple[Any, dict, str]]:
    """HN (12 frames), LN (60 frames) and clean truth of the shipped simulated volume, with ILM/RPE truth."""
    # imported here: the simulator module is not needed (nor loaded) until the sample is asked for
    from .simulate import SPECTRALIS_UM_PER_PX, load_sample_volume

    vol = load_sample_volume()
    scale = (BSCAN_SPACING_UM, SPECTRALIS_UM_PER_PX["axial"], SPECTRALIS_UM_PER_PX["lateral"])
    common = {"scale": scale, "units": (UM,) * 3, "axis_labels": AXES_3D}
    provenance = {"format": "simulated", "source": dict(getattr(vol, "metadata", {}) or {})}
    layers: list[tuple[Any, dict, str]] = []
    for key, label in (("hn", "HN"), ("ln", "LN"), ("clean", "clean")):
        data = getattr(vol, key)
        kwargs = {**common, "name": f"simulated_{label}", "metadata": {**provenance, "role": label},
                  "visible": label == "HN"}  # HN shown; LN and clean one click away
        if data.dtype.kind == "f":
            kwargs["contrast_limits"] = (0.0, 1.0)  # display domain: same contrast for all three
        layers.append((data, kwargs, "image"))
    for name in ("ILM", "RPE"):
        if name in vol.boundaries:
            layers.append(boundary_layer(vol.boundaries[name], f"simulated_{name}", name, scale,
                                         (UM,) * 3, AXES_3D, 3, source="simulated truth"))
    return layers


def heidelberg_vol() -> list[tuple[Any, dict, str]]:
    """The shipped Heidelberg Spectralis RNFL circle scan (MIT, HeyexImport) with its vendor ILM/RPE."""
    return nominal_spacing(oct_layers(read_oct(HEIDELBERG_VOL), "heidelberg_circle"))
