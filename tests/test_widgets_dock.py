"""Docks: all five plugin widgets fit a laptop screen; rows scroll; closing a dock disconnects it."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
pytest.importorskip("torch")

PLUGIN = "napari-hdcyclegan"
WIDGETS = ("Denoise OCT (HDcycleGAN)", "Compare with BM3D and wavelet", "Feature-map explorer",
           "ILM / RPE boundaries and thickness", "Train / fine-tune HDcycleGAN")
#: Usable height (px) of a 1366 x 768 laptop screen (taskbar and title bar off), which the window with
#: all five docks open must not exceed.
SCREEN_HEIGHT = 720
#: Widest a dock may ask to be (px): leaves most of a laptop screen to the canvas.
MAX_DOCK_WIDTH = 520


def test_all_docked_widgets_fit_a_laptop_screen(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QScrollArea

    from napari_hdcyclegan._widgets._dock import SCROLL_NAME

    viewer = make_napari_viewer(show=True)
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name) for name in WIDGETS]
    window = viewer.window._qt_window
    for (dock, widget), name in zip(docks, WIDGETS):
        assert dock.minimumSizeHint().height() <= 220, name
        area = widget.findChild(QScrollArea, SCROLL_NAME)
        assert area is not None, name
        # the rows are all there, just scrolled: the content asks for more than the dock minimum
        assert area.widget().sizeHint().height() > area.minimumHeight(), name
    qtbot.wait(50)  # the docks' styles and sizes settle in the event loop
    assert window.minimumSizeHint().height() <= SCREEN_HEIGHT


def test_docked_widgets_need_no_side_scroll_even_with_a_long_status(make_napari_viewer, qtbot):
    """napari styles a dock when it is added (wider fonts and paddings) and status lines can be long:
    the scroll area is refitted when shown, and the status line wraps instead of widening the rows."""
    from qtpy.QtWidgets import QScrollArea

    from napari_hdcyclegan._widgets._dock import SCROLL_NAME

    viewer = make_napari_viewer(show=True)
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        area = widget.findChild(QScrollArea, SCROLL_NAME)
        qtbot.waitUntil(area.isVisible)
        before = area.widget().minimumSizeHint().width()
        widget.status.value = " ".join(["a long status message that must wrap"] * 20)
        content = area.widget().minimumSizeHint().width()
        assert content == before, name
        assert area.minimumWidth() >= content + area.verticalScrollBar().sizeHint().width(), name
        assert area.minimumWidth() <= MAX_DOCK_WIDTH, name  # no row sized to a long model label or path


def test_make_scrollable_moves_rows_once(qtbot):
    from qtpy.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

    from napari_hdcyclegan._widgets._dock import SCROLL_NAME, make_scrollable

    widget = QWidget()
    qtbot.addWidget(widget)
    layout = QVBoxLayout(widget)
    labels = [QLabel(f"row {i}") for i in range(30)]
    for label in labels:
        layout.addWidget(label)
    layout.addStretch(1)
    tall = widget.minimumSizeHint().height()
    make_scrollable(widget)
    make_scrollable(widget)  # idempotent
    areas = widget.findChildren(QScrollArea)
    assert len(areas) == 1 and areas[0].objectName() == SCROLL_NAME
    assert all(label.parent() is areas[0].widget() for label in labels)
    assert widget.minimumSizeHint().height() < tall / 2


def test_destroyed_widget_disconnects_from_viewer(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QWidget

    from napari_hdcyclegan._widgets._dock import ViewerLinks

    class Probe(ViewerLinks, QWidget):
        pass

    viewer = make_napari_viewer()
    calls = []
    probe = Probe()
    probe.link(viewer.dims.events.current_step, calls.append)
    links = probe._links
    viewer.add_image(__import__("numpy").zeros((3, 4, 4)))
    viewer.dims.set_current_step(0, 1)
    assert calls
    probe.deleteLater()
    qtbot.waitUntil(lambda: not links, timeout=5000)
    n = len(calls)
    viewer.dims.set_current_step(0, 2)
    assert len(calls) == n
