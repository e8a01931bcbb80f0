"""One viewer-wide display aspect for OCT b-scans: "1:1 µm", "1:1 pixel" or an axial stretch.

OCT pixels are far from square (Spectralis: 3.9 µm axial x 11-18 µm lateral), so a b-scan drawn at
its physical scale is a thin strip. Viewers clinicians know offer "1:1 pixel" (every pixel square,
as Heidelberg's Eye Explorer shows b-scans by default) next to "1:1 µm" (true proportions). Here the
layers keep their µm ``scale`` (measurements, exports and the scale bar stay physical); the aspect
is a display stretch of the depth axis in every layer's ``affine``, the same for all layers of the
viewer so that they stay aligned, and applied to layers added later (results, grids, galleries).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

PHYSICAL, PIXEL = "1:1 µm (physical)", "1:1 pixel"
#: Display aspects offered in the widgets; "axial ×k" stretches depth k times the physical scale.
ASPECTS = (PHYSICAL, PIXEL, "axial ×2", "axial ×3", "axial ×4")
#: One controller per viewer (weakly held, so a closed viewer is not kept alive).
_CONTROLLERS: weakref.WeakKeyDictionary[Any, DisplayAspect] = weakref.WeakKeyDictionary()


def depth_axis(layer: Layer) -> int | None:
    """Axis of ``layer`` that is depth: the one labelled "depth", else the row axis (ndim - 2)."""
    labels = [str(label) for label in layer.axis_labels]
    if "depth" in labels:
        return labels.index("depth")
    return layer.ndim - 2 if layer.ndim >= 2 else None


def stretch_for(mode: str, reference: Layer | None) -> float:
    """Depth stretch of ``mode``; "1:1 pixel" squares the pixels of ``reference`` (lateral/axial)."""
    if mode == PHYSICAL:
        return 1.0
    if mode == PIXEL:
        axis = depth_axis(reference) if reference is not None else None
        if reference is None or axis is None or axis == reference.ndim - 1:
            return 1.0
        axial, lateral = float(reference.scale[axis]), float(reference.scale[-1])
        return lateral / axial if axial > 0 and lateral > 0 else 1.0
    if mode.startswith("axial ×"):
        return float(mode.split("×", 1)[1])
    raise ValueError(f"unknown display aspect {mode!r}; choose one of {', '.join(ASPECTS)}")


def depth_stretch(layer: Layer) -> float:
    """Depth stretch currently in ``layer.affine`` (1.0 when none was applied)."""
    axis = depth_axis(layer)
    if axis is None:
        return 1.0
    return float(np.asarray(layer.affine.affine_matrix)[axis, axis])


class DisplayAspect:
    """The display aspect of one viewer; use :func:`display_aspect` to get it."""

    changed = Signal(str)

    def __init__(self, viewer: napari.Viewer) -> None:
        self._viewer = weakref.ref(viewer)
        self.mode = PHYSICAL
        self.stretch = 1.0
        self._applied: weakref.WeakKeyDictionary[Layer, float] = weakref.WeakKeyDictionary()
        viewer.layers.events.inserted.connect(self._on_inserted)

    def set_mode(self, mode: str, reference: Layer | None = None) -> float:
        """Apply ``mode`` to every layer (``reference`` defines "1:1 pixel"); returns the stretch."""
        viewer = self._viewer()
        if reference is None and viewer is not None:
            reference = next((lay for lay in viewer.layers
                              if lay._type_string == "image" and lay.ndim >= 2), None)
        self.stretch = stretch_for(mode, reference)
        changed = mode != self.mode
        self.mode = mode
        if viewer is not None:
            for layer in viewer.layers:
                self.apply(layer)
            viewer.reset_view()
        if changed:
            self.changed.emit(mode)
        return self.stretch

    def apply(self, layer: Layer) -> None:
        """Give ``layer`` the viewer's depth stretch (composed with any affine it already has)."""
        axis = depth_axis(layer)
        if axis is None:
            return
        previous = self._applied.get(layer, 1.0)
        if previous == self.stretch:
            return
        factor = np.eye(layer.ndim + 1)
        factor[axis, axis] = self.stretch / previous
        layer.affine = factor @ np.asarray(layer.affine.affine_matrix)
        self._applied[layer] = self.stretch

    def reapply(self, layer: Layer) -> None:
        """Stretch ``layer`` again after its affine was replaced (the old stretch went with it)."""
        self._applied.pop(layer, None)
        self.apply(layer)

    def _on_inserted(self, event: Any) -> None:
        self.apply(event.value)


def own_affine(layer: Layer) -> np.ndarray:
    """``layer``'s affine without the depth stretch a viewer's aspect gave it: what a derived layer
    copies (the aspect then stretches the copy once, as it stretches every layer added)."""
    matrix = np.array(layer.affine.affine_matrix)
    axis = depth_axis(layer)
    for aspect in list(_CONTROLLERS.values()):
        stretch = aspect._applied.get(layer)
        if stretch and axis is not None:
            matrix[axis] /= stretch  # undoes apply's left factor: row ``axis`` scaled by the stretch
    return matrix


def display_aspect(viewer: napari.Viewer) -> DisplayAspect:
    """The :class:`DisplayAspect` of ``viewer`` (created on first use)."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # napari hands widgets a proxy per widget
    if viewer not in _CONTROLLERS:
        _CONTROLLERS[viewer] = DisplayAspect(viewer)
    return _CONTROLLERS[viewer]


def aspect_combo(viewer: napari.Viewer, reference: Any = None) -> Any:
    """A magicgui ComboBox bound to the viewer's aspect; ``reference()`` gives the layer whose
    pixels "1:1 pixel" squares. All combos of one viewer show the same value."""
    from magicgui.widgets import ComboBox

    aspect = display_aspect(viewer)
    combo = ComboBox(label="Aspect", choices=list(ASPECTS), value=aspect.mode,
                     tooltip="how b-scans are drawn: true µm proportions, square pixels, or depth "
                             "stretched; layer scales stay in µm")

    def on_combo(mode: str) -> None:
        if mode != aspect.mode or mode == PIXEL:
            aspect.set_mode(mode, reference() if reference is not None else None)

    def on_aspect(mode: str) -> None:
        if combo.value != mode:
            with combo.changed.blocked():  # the aspect is already applied
                combo.value = mode

    combo.changed.connect(on_combo)
    aspect.changed.connect(on_aspect)
    combo.native.destroyed.connect(lambda *_: aspect.changed.disconnect(on_aspect))
    return combo
