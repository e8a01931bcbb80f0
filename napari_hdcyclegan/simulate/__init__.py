"""Retinal OCT simulator: layered macula scenes, complex speckle, frame averaging (numpy/scipy only).

A scene is drawn once per seed (anatomy, optional pathology) as display levels in [0, 1] on a fixed
Spectralis-like field of view (1.92 mm deep x 5.86 mm wide; ``shape`` sets the sampling), mapped to
linear intensity with :func:`~napari_hdcyclegan.intensity.inverse_log_display`, and imaged per frame as
a circular complex Gaussian field (partially correlated between frames) through a Gaussian amplitude
PSF plus a complex noise floor; ``N`` intensity frames are averaged and shown with
:func:`~napari_hdcyclegan.intensity.log_display`. HN (12 frames) and LN (60 frames) come from the
same scene; ``clean`` is the display transform of the noise-free reflectivity blurred by the
intensity PSF, so that hn, ln and clean are directly comparable. See docs/oct_notes.md.

Boundaries are float rows (0 = top pixel centre) per A-scan, named ``UPPER_LOWER`` after the layers
they separate, plus ``ILM`` (vitreous/RNFL), ``RPE`` (outer edge of the RPE band, the retina's outer
boundary per docs/conventions.md), ``BM`` (Bruch's membrane; equals ``RPE`` unless drusen lift the RPE)
and ``CSI`` (choroid/sclera).

Modules: :mod:`.formation` (speckle image formation), :mod:`.anatomy` (the layered scene),
:mod:`.api` (b-scans, volumes, multi-eye sets), :mod:`.cache` (on-disk cache, sample volume),
:mod:`.randomized` (per-b-scan parameter draws covering real scanners: :func:`random_params`,
:func:`simulate_from_params`, :func:`simulate_random`, :func:`hn_realisations`, :func:`truth_pairs`,
:func:`realisation_stacks`).
"""

from .anatomy import BOUNDARY_NAMES, FOV_UM, PATHOLOGIES, SPECTRALIS_UM_PER_PX
from .api import SIM_VERSION, SimulatedBscan, SimulatedVolume, eye_seed, simulate_bscan, simulate_pairs, simulate_volume
from .cache import SAMPLE_PATH, SAMPLE_SETTINGS, cached_pairs, default_cache_dir, load_sample_volume
from .formation import DEFAULT_NOISE_FLOOR, DEFAULT_PSF, DEFAULT_RHO, intensity_psf, speckle_average
from .randomized import (
    GEOMETRIES,
    SPECKLE_REGIMES,
    BscanParams,
    hn_realisations,
    random_params,
    realisation_stacks,
    regime_params,
    simulate_from_params,
    simulate_random,
    speckle_params,
    truth_pair,
    truth_pairs,
)

__all__ = ["BOUNDARY_NAMES", "BscanParams", "GEOMETRIES", "hn_realisations", "random_params", "realisation_stacks",
           "regime_params", "SPECKLE_REGIMES",
           "speckle_params", "truth_pair", "truth_pairs", "simulate_from_params",
           "simulate_random", "DEFAULT_NOISE_FLOOR", "DEFAULT_PSF", "DEFAULT_RHO", "FOV_UM", "PATHOLOGIES",
           "SAMPLE_PATH", "SAMPLE_SETTINGS", "SIM_VERSION", "SPECTRALIS_UM_PER_PX", "SimulatedBscan",
           "SimulatedVolume", "cached_pairs", "default_cache_dir", "eye_seed", "intensity_psf", "load_sample_volume",
           "simulate_bscan", "simulate_pairs", "simulate_volume", "speckle_average"]
