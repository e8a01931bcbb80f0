"""Helpers shared by the dock widgets: layer choices, derived-layer geometry and the weights choices.
How work runs (workers, progress, notifications) is in :mod:`._workers`.

Everything here runs on the Qt main thread (it reads viewer state); compute lives in the core.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_hdcyclegan.errors import HDCycleGANError

from ._workers import show_error

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Value of the weights combo item that opens a folder dialog.
BROWSE = "__browse__"
#: Every widget whose weights combo was filled (weakly held), for refresh_weights_choosers().
_CHOOSERS: weakref.WeakSet[Any] = weakref.WeakSet()


def image_layer_choices(viewer: napari.Viewer, exclude: tuple[str, ...] = ()
                        ) -> list[tuple[str, Image]]:
    """(name, layer) of every grayscale, single-scale 2D/3D image layer whose name does not end
    with one of ``exclude``, for a magicgui ComboBox."""
    from napari.layers import Image

    return [(layer.name, layer) for layer in viewer.layers
            if isinstance(layer, Image) and not layer.rgb and not layer.multiscale
            and layer.ndim in (2, 3) and not layer.name.endswith(exclude)]


def no_image_message(viewer: napari.Viewer, what: str) -> str:
    """Why there is no layer to run ``what`` on: "add or open ..." in an empty viewer, else which of
    its layers cannot be used and why (an RGB, multiscale, 4D or non-image layer)."""
    from napari.layers import Image

    if not len(viewer.layers):
        return f"{what}: add or open an image layer first"
    reasons = []
    for layer in viewer.layers:
        if not isinstance(layer, Image):
            kind = type(layer).__name__
            reasons.append(f"{layer.name!r} is a{'n' if kind[0] in 'AEIOU' else ''} {kind} layer")
        elif layer.rgb or layer.multiscale or layer.ndim not in (2, 3):
            how = "RGB" if layer.rgb else "multiscale" if layer.multiscale else f"{layer.ndim}D"
            reasons.append(f"{layer.name!r} is {how}")
    shown = " (" + "; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else "") + ")" if reasons else ""
    return (f"{what}: no grayscale b-scan or volume layer to run on{shown}; open the scan with "
            "the napari-hdcyclegan reader, which reads colour exports as gray")


def connect_layer_list(viewer: napari.Viewer, *combos: Any, owner: Any = None
                       ) -> Callable[..., None]:
    """Refresh magicgui combos whenever layers are added, removed or reordered; returns the
    callback. With an ``owner`` (a ``_dock.ViewerLinks`` widget) closing its dock disconnects it."""
    def refresh(event: Any = None) -> None:
        for combo in combos:
            combo.reset_choices()

    events = viewer.layers.events
    for emitter in (events.inserted, events.removed, events.reordered):
        if owner is not None:
            owner.link(emitter, refresh)
        else:
            emitter.connect(refresh)
    return refresh


def layer_data(layer: Image) -> Any:
    """The layer's data as napari holds it (a numpy, dask or zarr array: nothing is read), checked
    to be a numeric 2D b-scan or 3D volume, else a clear ValueError."""
    if layer.multiscale or layer.rgb:
        raise ValueError(f"layer {layer.name!r}: multiscale and RGB images are not supported")
    data = layer.data
    shape, dtype = tuple(data.shape), np.dtype(data.dtype)
    if len(shape) not in (2, 3):
        raise ValueError(f"layer {layer.name!r} has shape {shape}; expected a 2D b-scan or a "
                         "3D volume with b-scans on axis 0")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"layer {layer.name!r} has dtype {dtype}; expected a numeric image")
    return data


def layer_array(layer: Image, index: int | None = None) -> np.ndarray:
    """:func:`layer_data` read as a numpy array; with ``index``, only b-scan ``index`` of a volume
    (a lazily loaded volume is not read whole for one b-scan on the main thread)."""
    data = layer_data(layer)
    return np.asarray(data if index is None or data.ndim == 2 else data[index])


def checked_data(layer: Image, what: str) -> Any:
    """:func:`layer_data` (unread: a worker reads it), or None after an error notification prefixed
    with ``what``."""
    return _or_notify(what, layer_data, layer)


def checked_bscan(layer: Image, what: str, index: int) -> np.ndarray | None:
    """A copy of b-scan ``index`` of the layer (its only one when 2D), or None after an error
    notification prefixed with ``what``."""
    return _or_notify(what, lambda lay: np.array(layer_array(lay, index)), layer)


def _or_notify(what: str, read: Callable[[Image], Any], layer: Image) -> Any:
    """``read(layer)``, or None after its ValueError was shown as an error prefixed with ``what``."""
    try:
        return read(layer)
    except ValueError as exc:
        show_error(f"{what}: {exc}")
        return None


def geometry(source: Image) -> dict[str, Any]:
    """scale, translate, rotate, shear, affine, units and axis_labels of ``source``, to copy onto a
    derived layer (drawn exactly over it, also when the layer is rotated or sheared; the display
    aspect's stretch is left out of the affine: the aspect stretches the new layer itself)."""
    from ._aspect import own_affine

    return {"scale": tuple(source.scale), "translate": tuple(source.translate),
            "rotate": np.array(source.rotate), "shear": np.array(source.shear), "affine": own_affine(source),
            "units": tuple(source.units), "axis_labels": tuple(source.axis_labels)}


def kept_metadata(source: Image) -> dict[str, Any]:
    """The fields of ``source``'s metadata that an output in its intensity domain keeps (intensity
    domain, laterality, scan pattern: ``io.tiff_block.KEPT_FIELDS``, as the command line's outputs
    do), so that the plugin's writer saves them and its reader reads the output as it read the input."""
    from napari_hdcyclegan.io.tiff_block import kept_fields

    return kept_fields(dict(source.metadata or {}))


def slice_geometry(source: Image, index: int) -> dict[str, Any]:
    """Geometry of a (1, H, W) layer showing b-scan ``index`` of a 3D ``source`` at its place."""
    geo = geometry(source)
    geo["translate"] = origin_at(geo, [index, 0, 0])
    return geo


def origin_at(geo: dict[str, Any], point: list[float]) -> tuple[float, ...]:
    """The translate that puts a derived layer's data origin at data ``point`` of a layer with
    geometry ``geo`` (:func:`geometry`): that point through its scale, shear, rotate and translate."""
    from napari.utils.transforms import Affine

    to_physical = Affine(scale=geo["scale"], translate=geo["translate"], rotate=geo["rotate"], shear=geo["shear"])
    return tuple(float(v) for v in to_physical(point))


def place_bscan(source: Image, index: int, image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(data, geometry) of a 2D result drawn at b-scan ``index`` of ``source`` (as is for 2D)."""
    if source.ndim == 3:
        return image[None], slice_geometry(source, index)
    return image, geometry(source)


def bscan_under_slider(viewer: napari.Viewer, layer: Image) -> int:
    """Index on axis 0 of ``layer`` under the dims slider, unclipped (may lie outside the layer)."""
    point = np.asarray(viewer.dims.point, dtype=float)[-layer.ndim:]
    return int(np.round(layer.world_to_data(point)[0]))


def current_bscan(viewer: napari.Viewer, layer: Image) -> int:
    """Index on axis 0 of the b-scan of a 3D ``layer`` under the dims slider (0 for a 2D layer)."""
    if layer.ndim != 3:
        return 0
    return int(np.clip(bscan_under_slider(viewer, layer), 0, layer.data.shape[0] - 1))


def set_image(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs: Any) -> Image:
    """Replace the data and properties of image layer ``name``, or add it when it does not exist."""
    from napari.layers import Image

    if name in viewer.layers and isinstance(viewer.layers[name], Image):
        layer = viewer.layers[name]
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        if "affine" in kwargs:  # the new affine has no display stretch: the viewer's aspect adds it
            from ._aspect import display_aspect

            display_aspect(viewer).reapply(layer)
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def weights_choices(extra: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, value) for the weights combo: shipped models, user models, folders browsed, Browse...

    The first entry, the default, picks a shipped model per input by its noise level; when no
    trained model is shipped the engine falls back to random weights, and the label says so.
    """
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir, shipped_models
    from napari_hdcyclegan.model.choice import AUTO, AVERAGED_MODEL, FEW_FRAME_MODEL, SINGLE_FRAME_MODEL
    from napari_hdcyclegan.model.registry import list_models

    shipped = shipped_models()
    auto = f"auto: by noise level and texture ({AVERAGED_MODEL}, {SINGLE_FRAME_MODEL} or {FEW_FRAME_MODEL})"
    if AVERAGED_MODEL not in shipped:
        auto = f"auto: {AVERAGED_MODEL} (UNTRAINED fallback, random weights)"
    choices: list[tuple[str, str]] = [(auto, AUTO)]  # the default first
    for name in shipped:
        try:
            trained = read_config(resolve_model_dir(name)).trained
        except ValueError:  # a broken shipped config is reported when it is loaded
            trained = True
        choices.append((name if trained else f"{name} (UNTRAINED, random weights)", name))
    choices += [(f"{e.name} (yours)", e.name) for e in list_models() if e.origin == "user"]
    for path in extra:
        choices.append((f"{Path(path).name} ({path})", str(path)))
    choices.append(("Browse...", BROWSE))
    return choices


def save_with_dialog(widget: Any, caption: str, default: str, file_filter: str,
                     write: Callable[[str], Any], what: str) -> None:
    """Ask for a file name and ``write(path)``; the widget's status line names the result. A name
    without a suffix gets the filter's first one (Qt's own dialog does not add it)."""
    import re

    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(widget, caption, default, file_filter)
    suffix = re.search(r"\*(\.\w+)", file_filter)
    if path and not Path(path).suffix and suffix:
        path += suffix.group(1)
    if path:
        try:
            widget.status.value = f"Exported {write(path)}"
        except (OSError, ValueError) as exc:
            show_error(f"{what}: export failed: {exc}")


def model_info(denoiser: Any, choice: Any = None, data: Any = None, levels: Any = None) -> dict[str, Any]:
    """provenance, trained and name of a Denoiser, for a worker's result dict; ``choice`` (from
    :func:`napari_hdcyclegan.engine.choose_denoiser`) says why ``auto`` chose it for this request;
    ``data`` (the input, denoised with ``levels``) records what each b-scan was adjusted by for the generator
    (``floor_offsets``, ``dim_gains``: ``Denoiser.input_adjustments``)."""
    name = f"{denoiser.name} (auto: {choice.reason})" if choice is not None else denoiser.name
    return {"provenance": denoiser.provenance(choice, data, levels), "trained": bool(denoiser.trained),
            "name": name}


def refresh_weights_choosers() -> None:
    """Re-read the model lists of every open weights chooser (e.g. after a model was exported)."""
    for chooser in list(_CHOOSERS):
        try:
            chooser.weights_combo.reset_choices()
        except RuntimeError:  # its Qt widget was already deleted
            _CHOOSERS.discard(chooser)


def status_label() -> Any:
    """An empty status line that wraps long messages at the dock's width instead of widening the dock.

    magicgui's Label is fixed to its text's width; a word-wrapped QLabel may take any width.
    """
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value="")
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


#: Characters of a model label the weights combo shows before eliding it (its tooltip shows all).
WEIGHTS_COMBO_CHARS = 28


def model_purpose(value: Any) -> str:
    """What a weights choice is for, from its config's description ("" when unknown)."""
    from napari_hdcyclegan.model.checkpoint import read_config, resolve_model_dir
    from napari_hdcyclegan.model.choice import AUTO

    if value is None or value == BROWSE:
        return "" if value is None else "choose a model folder (config.json + weights)"
    if value == AUTO:
        return ("picks a shipped model for each scan from its noise level and texture; "
                "the status line says which and why")
    try:
        return read_config(resolve_model_dir(str(value))).description
    except (HDCycleGANError, OSError, ValueError):
        return ""


def _describe_items(native: Any, parent: Any = None, first: int = 0, last: int | None = None) -> None:
    """Give items ``first``..``last`` (all by default; Qt's rowsInserted range) of a weights QComboBox
    their model's purpose as the tooltip shown on hover."""
    from qtpy.QtCore import Qt

    for i in range(first, native.count() if last is None else last + 1):
        native.setItemData(i, model_purpose(native.itemData(i)) or None, Qt.ItemDataRole.ToolTipRole)


class WeightsChooser:
    """Mixin for a QWidget with ``weights_combo`` (shipped models, browsed folders, Browse...)."""

    weights_combo: Any
    _extra_weights: list[str]

    def _make_weights_combo(self, tooltip: str | None = None, label: str = "Weights") -> Any:
        """The weights combo, as wide as :data:`WEIGHTS_COMBO_CHARS` characters whatever its labels;
        without ``tooltip`` its tooltip is the whole label of the current choice."""
        from magicgui.widgets import ComboBox
        from qtpy.QtWidgets import QComboBox

        combo = ComboBox(label=label, choices=self._weights_choices, tooltip=tooltip)
        native = combo.native
        # Qt sizes a combo to its longest label by default: "auto: by noise level ..." or a browsed
        # folder's path would widen the dock past the window.
        native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        native.setMinimumContentsLength(WEIGHTS_COMBO_CHARS)
        if tooltip is None:
            def show_current(*_: Any) -> None:
                native.setToolTip("\n".join(filter(None, (native.currentText(),
                                                           model_purpose(native.currentData())))))

            show_current()
            native.currentIndexChanged.connect(show_current)
        describe = partial(_describe_items, native)
        describe()
        native.model().rowsInserted.connect(describe)  # choices are reset when models are exported or browsed
        return combo

    def _weights_choices(self, widget: Any = None) -> list[tuple[str, str]]:
        _CHOOSERS.add(self)  # so that refresh_weights_choosers() reaches every open chooser
        return weights_choices(self._extra_weights)

    def set_weights(self, path: str | Path) -> None:
        """Select a model directory (what Browse... does), adding it to the choices."""
        path = str(path)
        if path not in self._extra_weights:
            self._extra_weights.append(path)
            self.weights_combo.reset_choices()
        self.weights_combo.value = path

    def _browse_weights(self) -> bool:
        """Ask for a model directory and select it; False when the dialog was cancelled."""
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(
            self,  # type: ignore[arg-type]  # the mixin is always used on a QWidget
            "Model directory (config.json + model.safetensors)")
        if folder:
            self.set_weights(folder)
        return bool(folder)

    def _on_weights_changed(self, value: str) -> None:
        if value == BROWSE and not self._browse_weights():
            self.weights_combo.reset_choices()
