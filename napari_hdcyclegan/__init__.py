"""napari-hdcyclegan: HDcycleGAN denoising of retinal OCT, as a headless core plus napari plugin.

Importing the package is cheap: torch and readers load lazily inside the functions that need them.
"""

__version__ = "0.1.0"
