"""Make the README screenshots: each dock widget of the plugin, run on the simulated sample volume.

Opens a real napari window (run it under a virtual X display on a headless machine)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/make_screenshots.py [--out docs/screenshots]
        [--only denoise compare ... train] [--weights NAME_OR_DIR] [--sample heidelberg_vol]

``--sample heidelberg_vol`` uses the real Spectralis circle scan the plugin ships instead of the
simulated volume (compare needs the simulated LN reference and always uses the simulated sample).
``train`` fine-tunes ``spectralis-real`` for a few steps with the real scan as HN and a heavily
averaged real Spectralis line scan from the shared data as LN (``--ln-scan``).

Each widget is docked through the plugin's npe2 manifest (as a user would from the Plugins menu),
started, waited for, and the whole window (canvas + docks) is saved to ``<out>/<widget>.png``,
palette-quantised when that is needed to keep the file under 400 KB.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PLUGIN = "napari-hdcyclegan"
SAMPLE = "simulated_volume"
MAX_BYTES = 400_000
WINDOW = (1500, 900)


def process_until(done: Callable[[], bool], timeout: float = 600.0) -> None:
    """Run the Qt event loop until ``done()`` is true (or fail after ``timeout`` seconds)."""
    from qtpy.QtWidgets import QApplication

    start = time.monotonic()
    while not done():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"gave up waiting after {timeout:.0f} s")


def settle(seconds: float = 1.0) -> None:
    """Let napari redraw (and notifications fade in) before the grab."""
    end = time.monotonic() + seconds
    process_until(lambda: time.monotonic() > end)


def idle(widget: Any, *attributes: str) -> Callable[[], bool]:
    """A predicate: every named worker attribute of ``widget`` is None (its run has finished)."""
    return lambda: all(getattr(widget, a, None) is None for a in attributes)


def open_viewer(sample: str = SAMPLE) -> Any:
    """A shown napari viewer with one of the plugin's samples, its (HN) image layer selected."""
    import napari
    from napari.layers import Image

    viewer = napari.Viewer(title="napari-hdcyclegan", show=True)
    viewer.window._qt_window.resize(*WINDOW)
    viewer.open_sample(PLUGIN, sample)
    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    hn = next((layer for layer in images if layer.name.endswith("_HN")), images[0])
    viewer.layers.selection.active = hn
    if hn.data.ndim == 3:
        viewer.dims.set_current_step(0, hn.data.shape[0] // 2)
    return viewer


def dock(viewer: Any, display_name: str) -> Any:
    """Dock a widget of the plugin by its manifest display name; returns the widget."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, display_name)
    widget.layer_combo.value = viewer.layers.selection.active
    return widget


def select_weights(widget: Any, weights: str | None) -> None:
    """Use ``weights`` (shipped name or model directory) when given."""
    if weights is None:
        return
    if Path(weights).is_dir():
        widget.set_weights(weights)
    else:
        widget.weights_combo.value = weights


def shot_denoise(viewer: Any, weights: str | None) -> None:
    """Denoise the whole volume; the output (blend 1) is drawn over the raw volume."""
    widget = dock(viewer, "Denoise OCT (HDcycleGAN)")
    select_weights(widget, weights)
    widget.run()
    process_until(idle(widget, "worker"))
    widget.aspect_combo.value = "1:1 pixel"  # at 1:1 µm a wide b-scan is a thin strip of the canvas


def shot_compare(viewer: Any, weights: str | None) -> None:
    """Model, BM3D and wavelet of the current b-scan in grid mode, scored against the LN layer."""
    widget = dock(viewer, "Compare with BM3D and wavelet")
    if weights is not None:
        widget.weights = weights
    ln = next((layer for layer in viewer.layers if layer.name.endswith("_LN")), None)
    widget.reference_combo.value = ln
    widget.run()
    process_until(lambda: idle(widget, "worker", "score_worker")()
                  and widget.table.item(0, 0) is not None)


def shot_features(viewer: Any, weights: str | None) -> None:
    """Feature maps of a generator stage over the current b-scan."""
    widget = dock(viewer, "Feature-map explorer")
    select_weights(widget, weights)
    widget.refresh()
    process_until(idle(widget, "worker"))


def shot_boundaries(viewer: Any, weights: str | None) -> None:
    """ILM / RPE lines, thickness map and profile over every b-scan."""
    widget = dock(viewer, "ILM / RPE boundaries and thickness")
    select_weights(widget, weights)
    widget.run()
    process_until(idle(widget, "worker"))


LN_SCAN = Path(__file__).resolve().parents[2] / "shared/data/vendor/spectralis_raw_data/Willis_B_716_0.vol"


def shot_train(viewer: Any, weights: str | None, ln_scan: Path = LN_SCAN, steps: int = 40) -> None:
    """Fine-tune on the open real scan (HN) against a heavily averaged real scan (LN), a few steps."""
    hn = viewer.layers.selection.active
    ln = viewer.open(str(ln_scan), plugin=PLUGIN)[0]
    ln.name = "LN (averaged line scan)"
    viewer.layers.selection.active = hn
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train / fine-tune HDcycleGAN")
    widget.hn_layer.value, widget.ln_layer.value, widget.preview_layer.value = hn, ln, hn
    widget.weights_combo.value = weights or "spectralis-real"
    widget.device_combo.value = "cpu"
    widget.steps_spin.value, widget.every_spin.value = steps, 10
    widget.crop_spin.value, widget.batch_spin.value = 128, 2
    widget.name_edit.value = "screenshot-finetune"
    widget.start()
    process_until(lambda: widget.job is not None and widget.job.state != "running", timeout=1200)
    settle(3.0)


SHOTS: dict[str, Callable[[Any, str | None], None]] = {
    "denoise": shot_denoise,
    "compare": shot_compare,
    "features": shot_features,
    "boundaries": shot_boundaries,
    "train": shot_train,
}


def save_png(image: np.ndarray, path: Path) -> int:
    """Write an RGBA screenshot as PNG, quantised to a palette if it would exceed MAX_BYTES."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    img.save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", nargs="*", choices=list(SHOTS), default=list(SHOTS))
    parser.add_argument("--weights", default=None, help="shipped model name or model directory")
    parser.add_argument("--sample", default=SAMPLE, help="sample key: simulated_volume or heidelberg_vol")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        viewer = open_viewer(SAMPLE if name == "compare" else args.sample)
        try:
            started = time.monotonic()
            SHOTS[name](viewer, args.weights)
            viewer.reset_view()  # fit the (anisotropic) b-scans to the canvas
            settle()
            path = args.out / f"{name}.png"
            size = save_png(viewer.screenshot(canvas_only=False, flash=False), path)
            print(f"{path}: {size / 1000:.0f} KB ({time.monotonic() - started:.1f} s)")
        finally:
            viewer.close()


if __name__ == "__main__":
    main()
