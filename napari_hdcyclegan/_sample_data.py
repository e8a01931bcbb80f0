"""npe2 sample data: a small simulated Spectralis-like volume and a real Heidelberg .vol circle scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._reader import boundary_layer, oct_layers
from .io import AXES_3D, PIXEL, UM, read_oct

DATA_DIR = Path(__file__).resolve().parent / "data"
HEIDELBERG_VOL = DATA_DIR / "heidelberg_circle.vol"
#: b-scan spacing of a Spectralis 49-line macular volume over ~6 mm (µm).
BSCAN_SPACING_UM = 120.0


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


def nominal_spacing(layers: list[tuple[Any, dict, str]]) -> list[tuple[Any, dict, str]]:
    """Layers of a single b-scan whose b-scan axis is in pixels, given µm and BSCAN_SPACING_UM.

    One b-scan has no b-scan spacing; a pixel unit next to the µm of the other sample makes napari
    drop units ("Inconsistent units") and a spacing of 1 next to 120 µm makes a 481-step slider.
    """
    image = layers[0][0]
    units = tuple(str(u) for u in layers[0][1].get("units", ()))
    if image.ndim != 3 or image.shape[0] != 1 or not units or units[0] != PIXEL:
        return layers
    out = []
    for data, kwargs, kind in layers:
        kwargs = {**kwargs, "units": (UM, *tuple(kwargs["units"])[1:]),
                  "scale": (BSCAN_SPACING_UM, *tuple(kwargs["scale"])[1:])}
        if kind == "image":
            kwargs["metadata"] = {**kwargs.get("metadata", {}),
                                  "bscan_spacing_um": f"nominal {BSCAN_SPACING_UM:g} (one b-scan)"}
        out.append((data, kwargs, kind))
    return out
