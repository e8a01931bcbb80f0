"""napari dock widgets: thin faces over the core (one module per widget)."""
