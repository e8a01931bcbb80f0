"""Dock plumbing shared by the widgets: scrollable content and viewer connections undone on close.

* :func:`scrollable`: the widget's rows go into a vertical scroll area, so that docking all widgets
  of the plugin on a laptop screen never forces the main window taller than the screen (each dock
  then asks for a short minimum height and scrolls).
* :class:`ViewerLinks`: a mixin that records the viewer events a widget listens to and disconnects
  them when its dock is closed (napari unparents the inner widget) or the widget is destroyed, so a
  closed widget stops reacting to new layers and slider moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qtpy.QtWidgets import QScrollArea, QVBoxLayout, QWidget

#: Minimum height (px) a dock asks for; the rest of its content scrolls.
MIN_DOCK_HEIGHT = 100
#: Object name of the scroll area, so that a widget is never wrapped twice.
SCROLL_NAME = "hdcycleganScroll"


def scrollable(owner: QWidget, *children: QWidget, min_height: int = MIN_DOCK_HEIGHT
               ) -> QVBoxLayout:
    """Lay ``children`` out top to bottom in a scroll area filling ``owner``; returns their layout."""
    from qtpy.QtWidgets import QVBoxLayout, QWidget

    content = QWidget()
    inner = QVBoxLayout(content)
    for child in children:
        inner.addWidget(child)
    inner.addStretch(1)
    _install(owner, content, min_height)
    return inner


def make_scrollable(widget: QWidget, min_height: int = MIN_DOCK_HEIGHT) -> None:
    """Move the rows of an already built ``widget`` into a scroll area (no-op when it has one)."""
    from qtpy.QtWidgets import QBoxLayout, QScrollArea, QVBoxLayout, QWidget

    old = widget.layout()
    if old is None or widget.findChild(QScrollArea, SCROLL_NAME) is not None:
        return
    content = QWidget()
    new = QVBoxLayout(content)
    new.setSpacing(old.spacing())
    stretches = [old.stretch(i) if isinstance(old, QBoxLayout) else 0 for i in range(old.count())]
    for stretch in stretches:
        item = old.takeAt(0)
        if item is None:
            continue
        if item.widget() is not None:
            new.addWidget(item.widget(), stretch)
        elif (sub := item.layout()) is not None:
            sub.setParent(None)
            new.addLayout(sub)
        else:
            new.addItem(item)  # stretch or spacer
    QWidget().setLayout(old)  # the usual way to drop a widget's layout: hand it to a temporary
    _install(widget, content, min_height)


def _install(owner: QWidget, content: QWidget, min_height: int) -> QScrollArea:
    """Give ``owner`` a margin-less layout holding a vertical scroll area around ``content``."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout

    area = QScrollArea(owner)
    area.setObjectName(SCROLL_NAME)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setWidget(content)
    fit_width(area)
    # napari styles a dock only when it is added: fonts and paddings grow, so fit again when shown
    area.installEventFilter(_refit_on_show(area))
    area.setMinimumHeight(min(min_height, content.sizeHint().height()))
    layout = QVBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(area)
    return area


def fit_width(area: QScrollArea) -> None:
    """Make ``area`` at least as wide as its content plus a vertical scroll bar (no side scroll)."""
    content, scroll = area.widget(), area.verticalScrollBar()
    if content is None or scroll is None:
        return
    area.setMinimumWidth(content.minimumSizeHint().width() + scroll.sizeHint().width() + 2)


def _refit_on_show(area: QScrollArea) -> Any:
    """An event filter, owned by ``area``, that runs :func:`fit_width` whenever ``area`` is shown."""
    from qtpy.QtCore import QEvent, QObject

    class RefitOnShow(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.Show:
                fit_width(area)
            return False

    return RefitOnShow(area)


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
