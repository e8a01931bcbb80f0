"""Retinal OCT simulator: layered macula scenes, complex speckle, frame averaging (numpy/scipy only).

A scene is drawn once per seed (anatomy, optional pathology) as display levels in [0, 1] on a fixed
Spectralis-like field of view (1.92 mm deep x 5.86 mm wide; ``shape`` sets the sampling), mapped to
linear intensity with :func:`~napari_hdcyclegan.intensity.inverse_log_display`, and imaged per frame as
a circular complex Gaussian field (partially correlated between frames) through a Gaussian amplitude
PSF plus a complex noise floor; ``N`` intensity frames are averaged and shown with
:func:`~napari_hdcyclegan.intensity.log_display`. HN (12 frames) and LN (60 frames) come from the
same scene; ``clean`` is the display transform of the noise-free reflectivity blurred by the
intensity PSF, so that hn, ln and clean are directly comparable. See OCT_NOTES.md.

Boundaries are float rows (0 = top pixel centre) per A-scan, named ``UPPER_LOWER`` after the layers
they separate, plus ``ILM`` (vitreous/RNFL), ``RPE`` (outer edge of the RPE band, the retina's outer
boundary per CONVENTIONS.md), ``BM`` (Bruch's membrane; equals ``RPE`` unless drusen lift the RPE)
and ``CSI`` (choroid/sclera).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

from .intensity import inverse_log_display, log_display

#: Heidelberg Spectralis sampling of a 496 x 512 b-scan (µm per pixel).
SPECTRALIS_UM_PER_PX = {"axial": 3.87, "lateral": 11.45}
#: Field of view of the simulated b-scan (µm): 496 x 3.87 deep, 512 x 11.45 wide, whatever the shape.
FOV_UM = (496 * SPECTRALIS_UM_PER_PX["axial"], 512 * SPECTRALIS_UM_PER_PX["lateral"])
PATHOLOGIES = (None, "drusen", "fluid", "detachment", "random")
#: Bump when the simulated output changes, so that cached pairs are regenerated.
SIM_VERSION = 4

DEFAULT_RHO = 0.02
DEFAULT_NOISE_FLOOR = 1e-4
DEFAULT_PSF = (0.8, 0.5)

# Layers from the vitreous down: (name, thickness µm away from the fovea, display level).
# Thicknesses and levels follow OCT_NOTES.md; SRF and DRU are zero-thick unless a pathology fills them.
_LAYERS = [
    ("VIT", 0.0, 0.05),
    ("RNFL", 35.0, 0.75),
    ("GCL", 45.0, 0.45),
    ("IPL", 38.0, 0.62),
    ("INL", 35.0, 0.35),
    ("OPL", 30.0, 0.58),
    ("ONL", 75.0, 0.22),
    ("ELM", 6.0, 0.50),
    ("MZ", 15.0, 0.30),
    ("EZ", 12.0, 0.88),
    ("OS", 22.0, 0.55),
    ("IZ", 10.0, 0.80),
    ("SRF", 0.0, 0.03),
    ("RPE", 22.0, 0.97),
    ("DRU", 0.0, 0.45),
    ("CHO", 260.0, 0.60),
    ("SCL", 0.0, 0.16),
]
_INNER = ("RNFL", "GCL", "IPL", "INL", "OPL")  # thinned by the foveal pit
_NAMES = [n for n, _, _ in _LAYERS]


def _boundary_name(upper: str, lower: str) -> str:
    """Interface name between two layers, with the clinical names for the ones we promise."""
    special = {("VIT", "RNFL"): "ILM", ("RPE", "DRU"): "RPE", ("DRU", "CHO"): "BM", ("CHO", "SCL"): "CSI"}
    return special.get((upper, lower), f"{upper}_{lower}")


BOUNDARY_NAMES = tuple(_boundary_name(a, b) for a, b in zip(_NAMES[:-1], _NAMES[1:]))


@dataclass
class _Simulated:
    """Fields shared by simulated b-scans and volumes: hn, ln, clean images, boundaries, metadata."""

    hn: np.ndarray
    ln: np.ndarray
    clean: np.ndarray
    boundaries: dict[str, np.ndarray]
    metadata: dict = field(default_factory=dict)

    @property
    def frames_n(self) -> dict[str, int]:
        """Frames averaged per domain, e.g. ``{"hn": 12, "ln": 60}``."""
        return {"hn": self.metadata.get("hn_frames"), "ln": self.metadata.get("ln_frames")}


@dataclass
class SimulatedBscan(_Simulated):
    """One simulated b-scan: hn, ln, clean float32 (H, W) display in [0, 1], boundaries name -> (W,)."""


@dataclass
class SimulatedVolume(_Simulated):
    """Simulated volume: hn, ln, clean float32 (N, H, W), boundaries name -> (N, W) rows."""

    @property
    def scale(self) -> tuple[float, float, float]:
        """(b-scan spacing, axial, lateral) in µm per pixel, for napari's ``scale``."""
        return tuple(self.metadata["scale_um"])

    def __len__(self) -> int:
        return int(self.hn.shape[0])

    def __getitem__(self, i: int) -> SimulatedBscan:
        """B-scan ``i`` as a :class:`SimulatedBscan`."""
        return SimulatedBscan(self.hn[i], self.ln[i], self.clean[i],
                              {k: v[i] for k, v in self.boundaries.items()}, dict(self.metadata))


# --------------------------------------------------------------------------------------------------
# Image formation


def _kernel1d(sigma: float) -> np.ndarray:
    """The 1-D Gaussian weights scipy.ndimage.gaussian_filter uses for ``sigma`` (sum 1)."""
    if sigma <= 0:
        return np.ones(1)
    radius = int(4.0 * sigma + 0.5)
    delta = np.zeros(2 * radius + 1)
    delta[radius] = 1.0
    return ndimage.gaussian_filter1d(delta, sigma, mode="constant")


def intensity_psf(linear: np.ndarray, psf: tuple[float, float] | None = DEFAULT_PSF) -> np.ndarray:
    """Expected speckle intensity of ``linear`` reflectivity: blur by the intensity PSF |h|^2 (float32).

    For an amplitude PSF h normalised to unit energy, E|h * (sqrt(I) n)|^2 = (|h|^2 * I).
    """
    out = np.asarray(linear, dtype=np.float32)
    if psf is None:
        return out.copy()
    for axis, sigma in zip((-2, -1), psf):
        k = _kernel1d(sigma) ** 2
        out = ndimage.correlate1d(out, (k / k.sum()).astype(np.float32), axis=axis, mode="nearest")
    return out


def speckle_average(linear_intensity: np.ndarray, n_frames: int, rng: np.random.Generator, rho: float = 0.0,
                    psf: tuple[float, float] | None = None, noise_floor: float = 0.0,
                    base: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``n_frames`` speckle intensity frames of a 2-D linear reflectivity map (float32).

    Each frame's field is ``sqrt(I) (sqrt(c) B + sqrt(1 - c) F)`` with B (shared ``base``, drawn when
    None) and F (fresh) circular complex Gaussian of unit power and c = sqrt(rho), so that the
    intensities of two frames correlate by ``rho``; then an amplitude PSF (Gaussian sigmas (axial,
    lateral) px, unit energy, so the mean intensity is kept) with complex noise of power
    ``noise_floor`` added to each frame; then |.|^2 averaged over frames.
    """
    lin = np.asarray(linear_intensity, dtype=np.float32)
    if lin.ndim != 2:
        raise ValueError(f"speckle_average expects a 2-D intensity map, got shape {lin.shape}")
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"rho must be in [0, 1), got {rho}")
    lin = np.clip(lin, 0.0, None)
    coh = float(np.sqrt(rho))  # complex coherence whose square is the intensity correlation
    gain = np.float32(1.0)
    sigmas = None
    if psf is not None:
        sigmas = (0.0, float(psf[0]), float(psf[1]))
        energy = float((_kernel1d(psf[0]) ** 2).sum() * (_kernel1d(psf[1]) ** 2).sum())
        gain = np.float32(1.0 / np.sqrt(energy))

    # Draw the fields with a margin of the PSF radius and crop after blurring, so that border pixels
    # see independent samples (edge-replicated noise would be correlated and too bright there).
    h, w = lin.shape
    rz, rx = (len(_kernel1d(s)) // 2 for s in psf) if psf is not None else (0, 0)
    padded = np.pad(lin, ((rz, rz), (rx, rx)), mode="edge")

    def blur(field2: np.ndarray) -> np.ndarray:
        """Amplitude PSF on the stacked (real, imag) padded field, cropped back to the image."""
        if sigmas is None:
            return field2
        out = ndimage.gaussian_filter(field2, sigmas, mode="nearest")[:, rz:rz + h, rx:rx + w]
        out *= gain
        return out

    half = np.float32(np.sqrt(0.5))  # real and imaginary parts carry half the power each
    shared = None
    if coh > 0:
        if base is None:
            base = rng.standard_normal((2, h, w), dtype=np.float32) * half
        elif np.shape(base) != (2, h, w):
            raise ValueError(f"base must have shape {(2, h, w)}, got {np.shape(base)}")
        # periodic padding keeps the margin samples independent of their neighbours
        base_p = np.pad(np.asarray(base, np.float32), ((0, 0), (rz, rz), (rx, rx)), mode="wrap")
        shared = blur(base_p * np.sqrt(coh * padded).astype(np.float32))
    # The noise floor joins the fresh field before the PSF: one draw per frame instead of two, and
    # since the PSF has unit energy its power stays ``noise_floor`` (with the speckle's grain, like
    # spectral-domain noise after the spectral window).
    fresh_amp = (np.sqrt((1.0 - coh) * padded + noise_floor) * half).astype(np.float32)
    acc = np.zeros(lin.shape, dtype=np.float32)
    for _ in range(int(n_frames)):
        f = rng.standard_normal((2, *fresh_amp.shape), dtype=np.float32)
        f *= fresh_amp
        f = blur(f)
        if shared is not None:
            f += shared
        np.multiply(f, f, out=f)
        acc += f[0]
        acc += f[1]
    acc /= np.float32(n_frames)
    return acc


# --------------------------------------------------------------------------------------------------
# Scene


class _SmoothField:
    """A smooth random function of (x, y) in mm: a few random cosines, amplitude ~1 (std)."""

    def __init__(self, rng: np.random.Generator, n: int = 6, wavelength_mm: tuple[float, float] = (1.5, 8.0)):
        lam = rng.uniform(*wavelength_mm, size=n)
        ang = rng.uniform(0, 2 * np.pi, size=n)
        k = 2 * np.pi / lam
        self.kx, self.ky = k * np.cos(ang), k * np.sin(ang)
        self.phase = rng.uniform(0, 2 * np.pi, size=n)
        self.amp = rng.uniform(0.5, 1.0, size=n)
        self.amp *= np.sqrt(2.0 / np.sum(self.amp**2))

    def __call__(self, x: np.ndarray, y: float) -> np.ndarray:
        arg = np.outer(self.kx, x) + (self.ky * y + self.phase)[:, None]
        return (self.amp[:, None] * np.cos(arg)).sum(0)


@dataclass
class _Scene:
    """Random parameters of one eye (anatomy + pathology), in µm and mm around the fovea."""

    fovea_xy: tuple[float, float]
    bm_depth_frac: float
    sag_um: float
    tilt_um: tuple[float, float]
    pit_floor: float
    pit_sigma_mm: float
    onl_fovea_um: float
    thick_scale: dict[str, float]
    thick_fields: dict[str, _SmoothField]
    level_offset: dict[str, float]
    wiggle: _SmoothField
    brightness: _SmoothField
    gain_level: float
    rnfl_nasal: float
    choroid_um: float
    choroid_decay_um: float
    choroid_field: _SmoothField
    choroid_tex: tuple[np.ndarray, ...]
    vessels: list[tuple[float, float, float, float, float]]
    pathology: str | None
    drusen: list[tuple[float, float, float, float]]
    cysts: list[tuple[float, float, float, float, float, float]]
    detachment: tuple[float, float, float, float] | None


def _draw_scene(rng: np.random.Generator, pathology: str | None) -> _Scene:
    """Draw the anatomy (and pathology) of one eye."""
    if pathology not in PATHOLOGIES:
        raise ValueError(f"pathology must be one of {PATHOLOGIES}, got {pathology!r}")
    anat, path_rng = rng.spawn(2)
    fovea = (anat.uniform(-400, 400) / 1000, 0.0)
    thick_scale = {n: float(anat.uniform(0.88, 1.12)) for n, t, _ in _LAYERS if t > 0}
    thick_fields = {n: _SmoothField(anat, 4) for n, t, _ in _LAYERS if t > 0}
    level_offset = {n: float(anat.normal(0, 0.03)) for n in _NAMES}
    level_offset["VIT"] = float(anat.uniform(-0.02, 0.01))  # the vitreous barely reflects
    # choroidal vessel lumens: random cosines in (x, y, depth) thresholded (a cheap 3-D texture)
    n_tex = 10
    lam_xy = anat.uniform(0.12, 0.35, size=n_tex)
    ang = anat.uniform(0, 2 * np.pi, size=n_tex)
    lam_z = anat.uniform(0.05, 0.14, size=n_tex)
    tex = (2 * np.pi / lam_xy * np.cos(ang), 2 * np.pi / lam_xy * np.sin(ang),
           2 * np.pi / lam_z * anat.choice([-1, 1], size=n_tex), anat.uniform(0, 2 * np.pi, size=n_tex))
    vessels = []
    for _ in range(int(anat.integers(3, 8))):
        # en-face line x = x0 + slope (y - fy); diameter µm; shadow strength (display levels)
        vessels.append((float(anat.uniform(-2.9, 2.9)), float(anat.uniform(-1.5, 1.5)),
                        float(anat.uniform(50, 150)), float(anat.uniform(0.08, 0.25)), float(anat.uniform(0.2, 0.8))))
    chosen = pathology
    if pathology == "random":
        chosen = [None, "drusen", "fluid", "detachment"][int(path_rng.integers(0, 4))]
    drusen, cysts, detachment = [], [], None
    fx = fovea[0]
    if chosen == "drusen":
        for _ in range(int(path_rng.integers(2, 7))):
            drusen.append((fx + float(path_rng.uniform(-2.0, 2.0)), float(path_rng.uniform(-0.5, 0.5)),
                           float(path_rng.uniform(30, 110)), float(path_rng.uniform(0.08, 0.3))))
    elif chosen == "fluid":
        for _ in range(int(path_rng.integers(3, 9))):
            # (x, y mm, lateral/axial semi-axes µm, depth fraction in INL..ONL, swelling weight)
            cysts.append((fx + float(path_rng.uniform(-1.2, 1.2)), float(path_rng.uniform(-0.3, 0.3)),
                          float(path_rng.uniform(60, 250)), float(path_rng.uniform(20, 80)),
                          float(path_rng.uniform(0.15, 0.85)), float(path_rng.uniform(0.6, 1.0))))
    elif chosen == "detachment":
        detachment = (fx + float(path_rng.uniform(-0.5, 0.5)), float(path_rng.uniform(-0.2, 0.2)),
                      float(path_rng.uniform(80, 300)), float(path_rng.uniform(0.4, 1.1)))
    return _Scene(
        fovea_xy=fovea, bm_depth_frac=float(anat.uniform(0.52, 0.62)),
        sag_um=float(anat.uniform(0, 160)), tilt_um=(float(anat.uniform(-120, 120)), float(anat.uniform(-60, 60))),
        pit_floor=float(anat.uniform(0.03, 0.15)), pit_sigma_mm=float(anat.uniform(0.38, 0.55)),
        onl_fovea_um=float(anat.uniform(95, 125)), thick_scale=thick_scale, thick_fields=thick_fields,
        level_offset=level_offset, wiggle=_SmoothField(anat, 6, (0.8, 4.0)), brightness=_SmoothField(anat, 4),
        gain_level=float(anat.normal(0, 0.03)), rnfl_nasal=float(anat.choice([-1.0, 1.0])),
        choroid_um=float(anat.uniform(180, 360)), choroid_decay_um=float(anat.uniform(200, 320)),
        choroid_field=_SmoothField(anat, 4), choroid_tex=tex, vessels=vessels, pathology=chosen,
        drusen=drusen, cysts=cysts, detachment=detachment,
    )


def _geometry(scene: _Scene, x_mm: np.ndarray, y_mm: float,
              depth_um: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Layer thicknesses (µm, per column) and Bruch's membrane depth (µm) at slice ``y_mm``.

    ``depth_um`` is the imaged depth; the eye's curvature and tilt are physical (µm over the
    Spectralis width) whatever the field of view.
    """
    fx, fy = scene.fovea_xy
    dx, dy = x_mm - fx, y_mm - fy
    r2 = dx**2 + dy**2
    pit = 1.0 - (1.0 - scene.pit_floor) * np.exp(-r2 / (2 * scene.pit_sigma_mm**2))
    fov = np.exp(-r2 / (2 * (0.6 * scene.pit_sigma_mm) ** 2))
    thick = {}
    for name, t, _ in _LAYERS:
        if t <= 0 or name == "CHO":
            continue
        th = t * scene.thick_scale[name] * (1.0 + 0.07 * scene.thick_fields[name](x_mm, y_mm))
        if name in _INNER:
            th = th * pit
        if name == "RNFL":  # thicker towards the optic disc (nasal side), thin at the fovea
            th = th * (1.0 + 0.6 / (1.0 + np.exp(-scene.rnfl_nasal * dx / 0.8)))
        if name == "ONL":  # cone nuclei pile up under the foveal pit (Henle fibres included)
            th = th + (scene.onl_fovea_um - t) * fov
        if name in ("OS", "MZ"):  # longer cone segments at the foveola
            th = th * (1.0 + 0.35 * fov)
        thick[name] = np.maximum(th, 0.0)
    thick["SRF"] = np.zeros_like(x_mm)
    thick["DRU"] = np.zeros_like(x_mm)
    for cx, cy, h, s in scene.drusen:
        thick["DRU"] = thick["DRU"] + h * np.exp(-((x_mm - cx) ** 2 + (y_mm - cy) ** 2) / (2 * s**2))
    # drusen lift the RPE and photoreceptors; the ONL thins over them, so the ILM moves less
    thick["ONL"] = np.maximum(thick["ONL"] - 0.6 * thick["DRU"], 0.35 * thick["ONL"])
    if scene.detachment is not None:
        cx, cy, h, s = scene.detachment
        thick["SRF"] = h * np.exp(-(((x_mm - cx) ** 2 + (y_mm - cy) ** 2) / (2 * s**2)) ** 1.5)
    for cx, cy, a_um, c_um, _, w in scene.cysts:  # cysts swell the INL/ONL they sit in, smoothly
        r2c = ((x_mm - cx) ** 2 + (y_mm - cy) ** 2) / (1.6 * a_um / 1000) ** 2
        swell = 1.6 * c_um * w * np.exp(-r2c)
        thick["INL"] = thick["INL"] + 0.4 * swell
        thick["ONL"] = thick["ONL"] + 0.6 * swell
    thick["CHO"] = scene.choroid_um * (1.0 + 0.12 * scene.choroid_field(x_mm, y_mm)) * (1.0 + 0.15 * np.exp(-r2 / 2))
    half_w = FOV_UM[1] / 2000
    bm = (scene.bm_depth_frac * depth_um - scene.sag_um * r2 / half_w**2 + scene.tilt_um[0] * x_mm / half_w
          + scene.tilt_um[1] * y_mm / half_w + 10.0 * scene.wiggle(x_mm, y_mm))
    return thick, bm


def _boundaries_um(thick: dict[str, np.ndarray], bm: np.ndarray) -> list[np.ndarray]:
    """Interface depths (µm) top to bottom: built upward from Bruch's membrane, downward to the CSI."""
    names = _NAMES
    i_bm = names.index("CHO")  # BM is the top of the choroid
    tops = [None] * len(names)
    tops[i_bm] = bm
    for i in range(i_bm - 1, 0, -1):
        tops[i] = tops[i + 1] - thick[names[i]]
    tops[i_bm + 1] = bm + thick["CHO"]
    return tops[1:]


def _render(scene: _Scene, y_mm: float, shape: tuple[int, int], um_per_px: tuple[float, float],
            x_shift_px: float = 0.0,
            z_shift_px: np.ndarray | float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Display levels (H, W) float32 and boundaries (rows) of the scene at slice ``y_mm``.

    ``x_shift_px``/``z_shift_px`` sample the scene displaced (an acquisition mismatch) exactly,
    without interpolating pixels.
    """
    h, w = shape
    um_z, um_x = um_per_px
    cols = np.arange(w, dtype=np.float64) + x_shift_px
    x_mm = (cols - (w - 1) / 2) * um_x / 1000
    thick, bm = _geometry(scene, x_mm, y_mm, um_z * h)
    tops_um = _boundaries_um(thick, bm)
    z_shift = np.broadcast_to(np.asarray(z_shift_px, dtype=np.float64), (w,))
    tops = [t / um_z + z_shift for t in tops_um]  # rows (pixel centres at integers)
    rows = np.arange(h, dtype=np.float32)[:, None]
    # coverage of each pixel [r - 0.5, r + 0.5) by "below boundary k" -> partial-volume edges
    cover = [np.clip(rows + 0.5 - t[None, :].astype(np.float32), 0.0, 1.0) for t in tops]
    bright = 0.03 * scene.brightness(x_mm, y_mm)[None, :] + scene.gain_level
    level = np.zeros(shape, dtype=np.float32)
    depth_cho_um = (rows - tops[_NAMES.index("CHO") - 1][None, :].astype(np.float32)) * np.float32(um_z)
    for i, (name, _, lvl) in enumerate(_LAYERS):
        upper = cover[i - 1] if i > 0 else 1.0
        lower = cover[i] if i < len(cover) else 0.0
        frac = upper - lower
        base = lvl + scene.level_offset[name]
        if name == "CHO":  # the vessel texture is costly: compute it on the choroid's rows only
            val = np.zeros(shape, np.float32)
            rows_in = np.flatnonzero(frac.any(axis=1))
            if rows_in.size:
                r0, r1 = rows_in[0], rows_in[-1] + 1
                val[r0:r1] = _choroid(scene, x_mm, y_mm, depth_cho_um[r0:r1], base)
        elif name == "SCL":
            d_scl = depth_cho_um - thick["CHO"][None, :].astype(np.float32)
            val = base * np.exp(-np.clip(d_scl, 0, None) / 400.0) + 0.02
        else:
            val = np.float32(base)
        level += frac * val
    level += bright.astype(np.float32) * cover[0]  # brightness drifts below the ILM only
    _add_vessels(scene, level, tops, x_mm, y_mm, um_z, um_x, rows)
    _add_cysts(scene, level, tops, x_mm, y_mm, um_z, rows)
    np.clip(level, 0.0, 1.0, out=level)
    names = BOUNDARY_NAMES
    return level, {n: t.astype(np.float32) for n, t in zip(names, tops)}


def _choroid(scene: _Scene, x_mm: np.ndarray, y_mm: float, depth_um: np.ndarray, base: float) -> np.ndarray:
    """Choroid display level: decaying with depth, darkened inside the vessel lumens."""
    kx, ky, kz, ph = scene.choroid_tex
    d = np.clip(depth_um, 0, None) / np.float32(1000.0)
    d = d / (1.0 + 2.5 * d)  # deeper (Haller) vessels are larger: stretch the axial frequency
    arg_xy = (np.outer(kx, x_mm) + (ky * y_mm + ph)[:, None]).astype(np.float32)  # (n, W)
    tex = np.zeros(depth_um.shape, dtype=np.float32)
    for j in range(len(kx)):
        tex += np.cos(arg_xy[j][None, :] + np.float32(kz[j]) * d)
    tex /= np.float32(np.sqrt(len(kx) / 2))
    lumen = 1.0 / (1.0 + np.exp(-(tex - 0.6) * 6.0))
    lumen *= np.clip(depth_um / 25.0, 0, 1)  # the choriocapillaris just under BM stays bright
    val = base * np.exp(-np.clip(depth_um, 0, None) / scene.choroid_decay_um)
    return (val * (1.0 - 0.55 * lumen)).astype(np.float32)


def _add_vessels(scene: _Scene, level: np.ndarray, tops: list[np.ndarray], x_mm: np.ndarray, y_mm: float,
                 um_z: float, um_x: float, rows: np.ndarray) -> None:
    """Superficial retinal vessels: bright blobs near the RNFL/GCL border casting shadows below."""
    fx, fy = scene.fovea_xy
    ilm, rnfl_gcl = tops[0], tops[1]
    for x0, slope, diam, shadow, depth_frac in scene.vessels:
        xc = x0 + slope * (y_mm - fy)
        if (xc - fx) ** 2 + (y_mm - fy) ** 2 < 0.35**2:  # foveal avascular zone
            continue
        half = diam / 2000.0
        prof = np.clip(1.0 - ((x_mm - xc) / half) ** 2, 0.0, None)  # (W,) cross-section
        if not prof.any():
            continue
        zc = ilm + depth_frac * (rnfl_gcl - ilm) + (diam / 2) / um_z * 0.5
        hz = np.maximum(np.sqrt(prof) * (diam / 2) / um_z, 1e-3)
        inside = np.clip(1.0 - ((rows - zc[None, :]) / hz[None, :]) ** 2, 0.0, 1.0)
        level += (0.8 - level) * inside * 0.85
        below = np.clip(rows - (zc + hz)[None, :], 0.0, 1.0)
        level -= np.float32(shadow) * np.sqrt(prof)[None, :].astype(np.float32) * below


def _add_cysts(scene: _Scene, level: np.ndarray, tops: list[np.ndarray], x_mm: np.ndarray, y_mm: float,
               um_z: float, rows: np.ndarray) -> None:
    """Intraretinal fluid: dark ellipsoids inside the INL..ONL band."""
    i_inl, i_elm = _NAMES.index("INL") - 1, _NAMES.index("ELM") - 1
    for cx, cy, a_um, c_um, frac, _ in scene.cysts:
        e = 1.0 - ((x_mm - cx) ** 2 + (y_mm - cy) ** 2) / (a_um / 1000) ** 2
        if not (e > 0).any():
            continue
        zc = tops[i_inl] + frac * (tops[i_elm] - tops[i_inl])
        hz = np.sqrt(np.clip(e, 0, None)) * c_um / um_z + 1e-3
        inside = np.clip(1.5 * (1.0 - ((rows - zc[None, :]) / hz[None, :]) ** 2), 0.0, 1.0)
        level += (0.03 - level) * inside.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Public simulation API


def _check_args(shape: tuple[int, int], hn_frames: int, ln_frames: int, mismatch: float,
                um_per_px: dict | None) -> tuple[tuple[int, int], tuple[float, float]]:
    """Validate the common arguments; return the shape and the sampling (axial, lateral µm/px)."""
    if len(shape) != 2 or min(shape) < 16:
        raise ValueError(f"shape must be (H, W) with H, W >= 16, got {shape}")
    for name, n in (("hn_frames", hn_frames), ("ln_frames", ln_frames)):
        if int(n) != n or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n}")
    if not 0 <= float(mismatch) <= 5:
        raise ValueError(f"mismatch must be a bool or a strength in [0, 5], got {mismatch}")
    h, w = int(shape[0]), int(shape[1])
    if um_per_px is None:  # the Spectralis field of view, sampled by ``shape``
        return (h, w), (FOV_UM[0] / h, FOV_UM[1] / w)
    try:
        um = (float(um_per_px["axial"]), float(um_per_px["lateral"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"um_per_px must be a dict with 'axial' and 'lateral' µm, got {um_per_px!r}") from exc
    if min(um) <= 0 or h * um[0] < 600:
        raise ValueError(f"um_per_px {um_per_px} with shape {shape} images less than 600 µm depth")
    return (h, w), um


def _mismatch_params(rng: np.random.Generator, w: int, strength: float) -> dict:
    """Random LN-acquisition mismatch: shift (px), smooth axial warp (px per column), gain.

    At strength 1: shifts up to 1.5 px per axis, an axial warp of about +-1 px along the b-scan
    and a gain of exp(+-0.25) (about +-8 grey levels of 255 in the display).
    """
    xs = np.linspace(-1, 1, w)
    warp = sum(rng.uniform(-0.6, 0.6) * np.cos(np.pi * k * xs / 2 + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3))
    return {"shift_z": strength * float(rng.uniform(-1.5, 1.5)), "shift_x": strength * float(rng.uniform(-1.5, 1.5)),
            "warp_z": strength * warp, "gain": float(np.exp(strength * rng.uniform(-0.25, 0.25)))}


def _simulate_slice(scene: _Scene, y_mm: float, shape: tuple[int, int], hn_frames: int, ln_frames: int,
                    rng: np.random.Generator, mismatch: float, rho: float, noise_floor: float,
                    psf: tuple[float, float] | None, um: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """hn, ln, clean (display) and boundaries of one slice."""
    level, bounds = _render(scene, y_mm, shape, um)
    lin = inverse_log_display(level).astype(np.float32)
    clean = log_display(intensity_psf(lin, psf))
    base = rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(np.sqrt(0.5)) if rho > 0 else None
    hn = log_display(speckle_average(lin, hn_frames, rng, rho, psf, noise_floor, base=base))
    if mismatch:
        mm = _mismatch_params(rng, shape[1], float(mismatch))
        lvl_ln, _ = _render(scene, y_mm, shape, um, x_shift_px=mm["shift_x"], z_shift_px=mm["shift_z"] + mm["warp_z"])
        lin_ln = inverse_log_display(lvl_ln).astype(np.float32) * np.float32(mm["gain"])
        base_ln = rng.standard_normal((2, *shape), dtype=np.float32) * np.float32(np.sqrt(0.5)) if rho > 0 else None
        ln = log_display(speckle_average(lin_ln, ln_frames, rng, rho, psf, noise_floor, base=base_ln))
    else:
        ln = log_display(speckle_average(lin, ln_frames, rng, rho, psf, noise_floor, base=base))
    return hn, ln, clean, bounds


def _metadata(seed: int, shape: tuple[int, int], hn_frames: int, ln_frames: int, mismatch: float,
              pathology: str | None, rho: float, noise_floor: float, psf, scene: _Scene,
              um_zx: tuple[float, float]) -> dict:
    """Provenance of a simulation (JSON-friendly)."""
    um = {"axial": float(um_zx[0]), "lateral": float(um_zx[1])}
    return {"simulator": "napari_hdcyclegan.simulate", "version": SIM_VERSION, "seed": int(seed),
            "shape": list(shape), "hn_frames": int(hn_frames), "ln_frames": int(ln_frames),
            "mismatch": float(mismatch), "pathology": pathology, "pathology_drawn": scene.pathology,
            "rho": float(rho), "noise_floor": float(noise_floor), "psf_sigma_px": None if psf is None else list(psf),
            "um_per_px": um, "display": "log_display (eyepy HEYEX transform), [0, 1]"}


def simulate_bscan(seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12, ln_frames: int = 60,
                   mismatch: bool | float = False, pathology: str | None = None, *, rho: float = DEFAULT_RHO,
                   noise_floor: float = DEFAULT_NOISE_FLOOR, psf: tuple[float, float] | None = DEFAULT_PSF,
                   um_per_px: dict[str, float] | None = None) -> SimulatedBscan:
    """Simulate one foveal b-scan: HN (``hn_frames``) and LN (``ln_frames``) averages, clean truth, boundaries.

    ``rho``: intensity correlation between frames; ``noise_floor``: complex noise power (linear
    intensity units); ``psf``: amplitude PSF Gaussian sigmas (axial, lateral) in px, None for none.
    ``mismatch`` displaces, warps and re-gains the LN acquisition only (truth stays registered to HN);
    a float scales it (True = 1: shifts up to 1.5 px, gain exp(+-0.25)). ``um_per_px`` (``{"axial",
    "lateral"}``): by default the Spectralis field of view (1.92 x 5.86 mm) is sampled by ``shape``;
    given, the image is a window of that sampling centred on the fovea (e.g. Spectralis-scale crops).
    """
    shape, um = _check_args(shape, hn_frames, ln_frames, mismatch, um_per_px)
    rng = np.random.default_rng(seed)
    scene_rng, noise_rng = rng.spawn(2)
    scene = _draw_scene(scene_rng, pathology)
    y = scene.fovea_xy[1] + float(scene_rng.uniform(-0.08, 0.08))
    hn, ln, clean, bounds = _simulate_slice(scene, y, shape, hn_frames, ln_frames, noise_rng, mismatch, rho,
                                            noise_floor, psf, um)
    meta = _metadata(seed, shape, hn_frames, ln_frames, mismatch, pathology, rho, noise_floor, psf, scene, um)
    meta["y_mm"] = y
    return SimulatedBscan(hn, ln, clean, bounds, meta)


def simulate_volume(n_bscans: int = 8, seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12,
                    ln_frames: int = 60, mismatch: bool | float = False, pathology: str | None = None, *,
                    spacing_um: float = 120.0, rho: float = DEFAULT_RHO, noise_floor: float = DEFAULT_NOISE_FLOOR,
                    psf: tuple[float, float] | None = DEFAULT_PSF, um_per_px: dict[str, float] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> SimulatedVolume:
    """Simulate a raster of ``n_bscans`` b-scans ``spacing_um`` apart, centred on the fovea.

    Anatomy and pathology are 3-D, so neighbouring b-scans vary smoothly (the foveal pit deepens
    towards the middle slice). Other arguments as :func:`simulate_bscan`.
    """
    shape, um = _check_args(shape, hn_frames, ln_frames, mismatch, um_per_px)
    if int(n_bscans) < 1:
        raise ValueError(f"n_bscans must be >= 1, got {n_bscans}")
    rng = np.random.default_rng(seed)
    scene_rng, noise_rng = rng.spawn(2)
    scene = _draw_scene(scene_rng, pathology)
    ys = scene.fovea_xy[1] + (np.arange(n_bscans) - (n_bscans - 1) / 2) * spacing_um / 1000
    hn = np.empty((n_bscans, *shape), np.float32)
    ln, clean = np.empty_like(hn), np.empty_like(hn)
    bounds = {n: np.empty((n_bscans, shape[1]), np.float32) for n in BOUNDARY_NAMES}
    for i, y in enumerate(ys):
        hn[i], ln[i], clean[i], b = _simulate_slice(scene, float(y), shape, hn_frames, ln_frames, noise_rng,
                                                    mismatch, rho, noise_floor, psf, um)
        for k, v in b.items():
            bounds[k][i] = v
        if progress is not None:
            progress(i + 1, n_bscans)
    meta = _metadata(seed, shape, hn_frames, ln_frames, mismatch, pathology, rho, noise_floor, psf, scene, um)
    meta.update(n_bscans=int(n_bscans), spacing_um=float(spacing_um),
                scale_um=[float(spacing_um), meta["um_per_px"]["axial"], meta["um_per_px"]["lateral"]])
    return SimulatedVolume(hn, ln, clean, bounds, meta)


# --------------------------------------------------------------------------------------------------
# Cache and sample data


def default_cache_dir() -> Path:
    """Simulation cache: ``$NAPARI_HDCYCLEGAN_CACHE/sim``, else the user cache dir's ``sim`` folder."""
    root = os.environ.get("NAPARI_HDCYCLEGAN_CACHE")
    if not root:
        try:
            from platformdirs import user_cache_dir

            root = user_cache_dir("napari-hdcyclegan", appauthor=False)
        except ImportError:  # platformdirs comes with napari, but the core must not need it
            root = str(Path.home() / ".cache" / "napari-hdcyclegan")
    return Path(root) / "sim"


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    """Write an .npz next to ``path`` and rename it into place, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _volume_to_arrays(vol: SimulatedVolume) -> dict[str, np.ndarray]:
    """Flatten a volume into npz arrays (boundaries prefixed ``b_``, metadata as JSON)."""
    out = {"hn": vol.hn, "ln": vol.ln, "clean": vol.clean, "metadata": np.array(json.dumps(vol.metadata))}
    out.update({f"b_{k}": v for k, v in vol.boundaries.items()})
    return out


def _volume_from_npz(path: Path) -> SimulatedVolume:
    """Read a volume written by :func:`_volume_to_arrays` (uint8 images are scaled to [0, 1])."""
    with np.load(path, allow_pickle=False) as z:
        imgs = {}
        for k in ("hn", "ln", "clean"):
            a = z[k]
            imgs[k] = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        bounds = {k[2:]: z[k].astype(np.float32) for k in z.files if k.startswith("b_")}
        meta = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return SimulatedVolume(imgs["hn"], imgs["ln"], imgs["clean"], bounds, meta)


def eye_seed(seed: int, eye: int) -> int:
    """Seed of eye ``eye`` in a multi-eye set drawn from ``seed`` (independent streams, reproducible)."""
    return int(np.random.SeedSequence([int(seed), int(eye)]).generate_state(1, np.uint32)[0])


def simulate_pairs(n: int = 8, seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12,
                   ln_frames: int = 60, bscans_per_eye: int | None = 8, **kwargs) -> SimulatedVolume:
    """``n`` b-scans from ``ceil(n / bscans_per_eye)`` different eyes (rasters through each fovea).

    ``bscans_per_eye=None`` (or >= n) gives one eye: exactly ``simulate_volume(n, seed, ...)``. Eye
    ``i`` is ``simulate_volume(seed=eye_seed(seed, i))``. ``kwargs`` go to :func:`simulate_volume`.
    """
    if bscans_per_eye is None or bscans_per_eye >= n:
        return simulate_volume(n, seed, shape, hn_frames, ln_frames, **kwargs)
    if int(bscans_per_eye) < 1:
        raise ValueError(f"bscans_per_eye must be >= 1 or None, got {bscans_per_eye}")
    parts, seeds = [], []
    for eye in range(-(-int(n) // int(bscans_per_eye))):
        k = min(int(bscans_per_eye), int(n) - eye * int(bscans_per_eye))
        seeds.append(eye_seed(seed, eye))
        parts.append(simulate_volume(k, seeds[-1], shape, hn_frames, ln_frames, **kwargs))
    meta = dict(parts[0].metadata)
    meta.update(seed=int(seed), eye_seeds=seeds, bscans_per_eye=int(bscans_per_eye), n_bscans=int(n),
                pathology_drawn=[p.metadata["pathology_drawn"] for p in parts])
    cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("hn", "ln", "clean")}
    bounds = {b: np.concatenate([p.boundaries[b] for p in parts]) for b in parts[0].boundaries}
    return SimulatedVolume(cat["hn"], cat["ln"], cat["clean"], bounds, meta)


def cached_pairs(n: int = 8, seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12,
                 ln_frames: int = 60, cache_dir: str | os.PathLike | None = None, bscans_per_eye: int | None = 8,
                 **kwargs) -> SimulatedVolume:
    """:func:`simulate_pairs` through an on-disk cache: one .npz per setting, written atomically.

    ``n`` b-scans, ``bscans_per_eye`` per simulated eye (None: one eye, i.e. :func:`simulate_volume`).
    ``kwargs`` go to :func:`simulate_volume` (mismatch, pathology, rho, ...) and are part of the key.
    Cache folder: ``cache_dir``, else :func:`default_cache_dir` (env ``NAPARI_HDCYCLEGAN_CACHE``).
    """
    key = {"n": int(n), "seed": int(seed), "shape": [int(s) for s in shape], "hn": int(hn_frames),
           "ln": int(ln_frames), "per_eye": bscans_per_eye, "version": SIM_VERSION,
           **{k: kwargs[k] for k in sorted(kwargs)}}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"sim_n{n}_s{seed}_{shape[0]}x{shape[1]}_hn{hn_frames}_ln{ln_frames}_{digest}.npz"
    if path.is_file():
        try:
            return _volume_from_npz(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # JSONDecodeError is a ValueError
            pass  # a corrupt cache file is regenerated below
    vol = simulate_pairs(n, seed, shape, hn_frames, ln_frames, bscans_per_eye, **kwargs)
    _save_npz_atomic(path, _volume_to_arrays(vol))
    return vol


SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "sim_sample.npz"
#: Settings of the shipped sample volume (scripts/make_sample_data.py).
SAMPLE_SETTINGS = {"n_bscans": 5, "seed": 2019, "shape": (496, 512), "hn_frames": 12, "ln_frames": 60,
                   "spacing_um": 120.0}


def load_sample_volume(path: str | os.PathLike | None = None) -> SimulatedVolume:
    """The shipped precomputed sample volume (8-bit images), simulated afresh if the file is missing."""
    p = Path(path) if path is not None else SAMPLE_PATH
    if p.is_file():
        return _volume_from_npz(p)
    return simulate_volume(**SAMPLE_SETTINGS)
