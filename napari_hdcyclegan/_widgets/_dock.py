"""Dock plumbing shared by the widgets: scrollable content and viewer connections undone on close.

* :func:`scrollable`: the widget's rows go into a vertical scroll area, so that docking all widgets
  of the plugin on a laptop screen never forces the main window taller than the screen (each dock
  then asks for a short minimum height and scrolls).
* :class:`ViewerLinks`: a mixin that records the viewer events a widget listens to and disconnects
  them when its dock is closed (napari unparents the inner widget) or the widget is destroyed, so a
  closed widget stops reacting to new layers and slider moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

#: Minimum height (px) a dock asks for; the rest of its content scrolls.
MIN_DOCK_HEIGHT = 140


def scrollable(owner: "QWidget", *children: "QWidget", min_height: int = MIN_DOCK_HEIGHT
               ) -> "QVBoxLayout":
    """Lay ``children`` out top to bottom in a scroll area filling ``owner``; returns their layout."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

    content = QWidget()
    inner = QVBoxLayout(content)
    for child in children:
        inner.addWidget(child)
    inner.addStretch(1)
    area = QScrollArea(owner)
    area.setObjectName("hdcycleganScroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(content)
    fit_width(area)
    area.setMinimumHeight(min(min_height, content.sizeHint().height()))
    layout = QVBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(area)
    return inner


def fit_width(area: "QScrollArea") -> None:
    """Make ``area`` at least as wide as its content plus a vertical scroll bar (no side scroll)."""
    content = area.widget()
    bar = area.verticalScrollBar().sizeHint().width()
    area.setMinimumWidth(content.minimumSizeHint().width() + bar + 2)


def disconnect_all(links: list[tuple[Any, Callable]]) -> None:
    """Disconnect every (emitter, callback) pair in ``links`` (already gone ones are skipped)."""
    while links:
        emitter, callback = links.pop()
        try:
            emitter.disconnect(callback)
        except (RuntimeError, TypeError, ValueError):  # emitter or receiver already deleted
            pass


class ViewerLinks:
    """Mixin for a dock QWidget (listed before QWidget): viewer connections undone on close."""

    _links: list[tuple[Any, Callable]]
    _docked: bool = False
    #: True once the dock was closed or the widget destroyed: late worker results are dropped.
    closed: bool = False

    def link(self, emitter: Any, callback: Callable) -> None:
        """``emitter.connect(callback)``, remembered so that closing the dock disconnects it."""
        if not hasattr(self, "_links"):
            self._links = []
            links = self._links  # the lambda must not hold self (it runs after the C++ object died)
            self.destroyed.connect(lambda *_: disconnect_all(links))  # type: ignore[attr-defined]
        emitter.connect(callback)
        self._links.append((emitter, callback))

    def close_links(self) -> None:
        """Disconnect from the viewer and stop reacting (called when the dock is closed)."""
        self.closed = True
        disconnect_all(getattr(self, "_links", []))
        self.on_links_closed()

    def on_links_closed(self) -> None:
        """Hook for subclasses: stop timers and the like."""

    def event(self, ev: Any) -> bool:  # noqa: D102 - Qt override
        from qtpy.QtCore import QEvent

        if ev.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:  # type: ignore[attr-defined]
                self._docked = True
            elif self._docked and not self.closed:  # napari's close button unparents the widget
                self.close_links()
        return super().event(ev)  # type: ignore[misc]
