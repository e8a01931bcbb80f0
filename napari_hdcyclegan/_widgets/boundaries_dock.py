"""The boundaries widget as the manifest docks it: its rows in a scroll area (``_dock.py``).

:class:`BoundaryWidget` lays itself out at its full height (about 570 px with its plot); docked next
to the other widgets that forced the window taller than a laptop screen. This subclass only moves
its rows into a scroll area; it is a no-op once the widget does so itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._dock import make_scrollable
from .boundaries import BoundaryWidget

if TYPE_CHECKING:
    import napari


class ScrollingBoundaryWidget(BoundaryWidget):
    """:class:`BoundaryWidget` whose content scrolls, so that the dock can be short."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__(napari_viewer)
        make_scrollable(self)
