"""Per-b-scan random acquisition and anatomy parameters covering real scanners, and their simulation.

:func:`random_params` draws a :class:`BscanParams` (frames averaged 1..100, speckle grain / PSF,
384..1536 A-scans, display mapping and contrast, noise floor, depth roll-off, tilt and curvature,
macular / line / peripapillary circle geometry, retina folded over the top edge, posterior hyaloid,
pathology, vessel shadows, textured layers and choroid); :func:`simulate_from_params` renders it with
the same anatomy and speckle model as :func:`~napari_hdcyclegan.simulate.simulate_bscan`, whose
defaults it leaves untouched. Ranges were set against
``scripts/calibrate_simulator.py`` (README, "Simulator calibration").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from ..intensity import inverse_log_display
from .anatomy import _draw_scene, _render
from .api import SIM_VERSION, SimulatedBscan
from .formation import intensity_psf, speckle_average

GEOMETRIES = ("macula", "line", "circle")
_FOV_MM = {"macula": 6.0, "line": 9.0, "circle": 3.4 * np.pi}


@dataclass(frozen=True)
class BscanParams:
    """Everything that makes one random b-scan; lengths in px unless named otherwise."""

    seed: int
    shape: tuple[int, int]
    depth_mm: float
    geometry: str
    hn_frames: int
    ln_frames: int
    rho: float
    psf: tuple[float, float]
    art_blur_px: float
    noise_floor: float
    display_floor: float
    display_peak: float
    rolloff_um: float
    tilt_um: float
    sag_um: float
    shift_px: float
    fold_gain: float
    hyaloid: float
    pathology: str | None
    n_vessels: int
    layer_texture: float
    choroid_texture: float
    sclera_offset: float

    @property
    def um_per_px(self) -> dict[str, float]:
        """Axial and lateral sampling (µm per pixel)."""
        return {"axial": 1000 * self.depth_mm / self.shape[0], "lateral": 1000 * _FOV_MM[self.geometry] / self.shape[1]}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A draw uniform in log between ``lo`` and ``hi``."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_params(rng: np.random.Generator | int = 0) -> BscanParams:
    """Draw the parameters of one b-scan from ranges that cover the shared real scans."""
    rng = np.random.default_rng(rng)
    h = int(rng.integers(360, 769))
    w = int(round(_log_uniform(rng, 384, 1536)))
    hn = int(round(_log_uniform(rng, 1, 100)))
    geometry = str(rng.choice(GEOMETRIES, p=[0.55, 0.2, 0.25]))
    return BscanParams(
        seed=int(rng.integers(2**31)), shape=(h, w), depth_mm=float(rng.uniform(1.7, 2.4)), geometry=geometry,
        hn_frames=hn, ln_frames=int(min(60, max(4 * hn, 30))), rho=float(rng.uniform(0.0, 0.05)),
        psf=(float(rng.uniform(0.15, 1.5)), float(rng.uniform(0.15, 0.8))),
        art_blur_px=float(rng.uniform(0.2, 1.0)) if hn > 1 and rng.random() < 0.5 else 0.0,
        noise_floor=_log_uniform(rng, 5e-5, 1.5e-3), display_floor=float(rng.uniform(-0.12, 0.3)),
        display_peak=float(rng.uniform(0.62, 0.95)), rolloff_um=float(rng.uniform(1500, 6000)),
        tilt_um=float(rng.uniform(-250, 250)), sag_um=float(rng.uniform(-40, 180)),
        shift_px=float(rng.uniform(-0.6, -0.35) * h if rng.random() < 0.2 else rng.uniform(-0.3, 0.12) * h),
        fold_gain=float(rng.uniform(0.4, 1.0)),
        hyaloid=float(rng.uniform(0.08, 0.3)) if rng.random() < 0.4 else 0.0,
        pathology=[None, None, None, None, "drusen", "fluid", "detachment"][int(rng.integers(7))],
        n_vessels=int(rng.integers(0, 9)), layer_texture=float(rng.uniform(0.0, 0.08)),
        choroid_texture=float(rng.uniform(0.0, 0.2)), sclera_offset=float(rng.uniform(-0.16, 0.0)),
    )


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Smooth Gaussian noise of unit std (float32): tissue texture that speckle does not average away."""
    t = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return t / max(float(t.std()), 1e-6)


def _band(rows: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Mask (float32) of the rows between two boundaries, per column."""
    return ((rows >= top[None, :]) & (rows < bottom[None, :])).astype(np.float32)


def _tissue_levels(p: BscanParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict, int]:
    """Display levels on a canvas ``fold`` rows taller than the image, tissue mask, boundaries, ``fold``."""
    h, w = p.shape
    um = p.um_per_px
    scene = _draw_scene(rng, p.pathology)
    circle = _FOV_MM["circle"] if p.geometry == "circle" else None
    scene.level_offset["SCL"] = p.sclera_offset
    sag = 0.0 if circle else p.sag_um * (5.86 / _FOV_MM[p.geometry]) ** 2
    scene = replace(scene, sag_um=sag, tilt_um=(p.tilt_um, 0.0), circle_mm=circle,
                    soft_shadows=True, vessels=scene.vessels[:p.n_vessels])
    fold = int(max(0.0, -p.shift_px) + 0.2 * h)
    scene.bm_depth_frac = 0.55 * h / (h + fold)  # Bruch's membrane at 55% of the image, then shifted
    canvas = (h + fold, w)
    level, bounds = _render(scene, 0.0, canvas, (um["axial"], um["lateral"]), z_shift_px=fold + p.shift_px)
    rows = np.arange(canvas[0], dtype=np.float32)[:, None]
    tissue = rows >= bounds["ILM"][None, :]
    tex_rng = np.random.default_rng(rng.integers(2**31))
    retina = _band(rows, bounds["ILM"], bounds["RPE"])
    choroid = _band(rows, bounds["BM"], bounds["CSI"])
    level += p.layer_texture * _texture(tex_rng, canvas, (0.7, 1.5)) * retina
    level *= 1.0 + p.choroid_texture * _texture(tex_rng, canvas, (3.0, 6.0)) * choroid
    deep = np.clip((rows - bounds["BM"][None, :] - 3) / 20, 0, 0.7).astype(np.float32)  # soft lumens and CSI
    level = (1 - deep) * level + deep * ndimage.gaussian_filter(level, (5.0, 3.0))
    if p.hyaloid > 0:  # a thin membrane in the vitreous, touching the retina in places
        gap = np.clip(25 * (1 + 0.5 * scene.wiggle(np.linspace(-3, 3, w), 0.0)) - 10, 0, None)
        line = np.exp(-0.5 * (rows - (bounds["ILM"] - gap)[None, :]) ** 2 / 0.8**2) * (gap > 3)[None, :]
        level += p.hyaloid * line.astype(np.float32)
    return np.clip(level, 0.0, 1.0), tissue, bounds, fold


def _display(intensity: np.ndarray, p: BscanParams, peak: float) -> np.ndarray:
    """Log display: the noise floor at ``display_floor``, ``peak`` intensity at ``display_peak``, clipped."""
    lo, hi = np.log(p.noise_floor), np.log(max(peak, 2 * p.noise_floor))
    d = (np.log(np.maximum(intensity, 1e-12)) - lo) / (hi - lo) * (p.display_peak - p.display_floor) + p.display_floor
    return np.clip(d, 0.0, 1.0).astype(np.float32)


def _scene(p: BscanParams, rng: np.random.Generator, folds: bool = True) -> tuple[np.ndarray, dict, int, float]:
    """Noise-free linear intensity of the b-scan (folded unless ``folds`` is False: the display peak stays
    the folded scene's), its boundaries, the fold and the display peak."""
    level, tissue, bounds, fold = _tissue_levels(p, rng)
    h = p.shape[0]
    depth = np.arange(level.shape[0], dtype=np.float32)[:, None] - fold
    lin = inverse_log_display(level).astype(np.float32) * np.exp(-np.clip(depth, 0, None) * p.um_per_px["axial"]
                                                                  / p.rolloff_um).astype(np.float32)
    img = lin[fold:].copy()
    img[:fold] += p.fold_gain * (lin * tissue)[:fold][::-1][:h]  # above zero delay: folds back as a mirror
    peak = float(np.percentile(intensity_psf(img, p.psf) + np.float32(p.noise_floor), 99.7))
    return (img if folds else lin[fold:].copy()), bounds, fold, peak


def _acquire(img: np.ndarray, p: BscanParams, n: int, rng: np.random.Generator) -> np.ndarray:
    """Average of ``n`` frames, smeared laterally by the residual misregistration of frame averaging."""
    out = speckle_average(img, n, rng, p.rho, p.psf, p.noise_floor)
    return ndimage.gaussian_filter1d(out, p.art_blur_px, axis=1) if p.art_blur_px > 0 else out


def simulate_from_params(p: BscanParams) -> SimulatedBscan:
    """Simulate the b-scan ``p`` describes: hn, ln, clean (display [0, 1]) and boundaries (rows, may be < 0)."""
    scene_rng, noise_rng = np.random.default_rng(p.seed).spawn(2)
    img, bounds, fold, peak = _scene(p, scene_rng)
    clean = intensity_psf(img, p.psf) + np.float32(p.noise_floor)
    hn = _display(_acquire(img, p, p.hn_frames, noise_rng), p, peak)
    ln = _display(_acquire(img, p, p.ln_frames, noise_rng), p, peak)
    meta = {"simulator": "napari_hdcyclegan.simulate.simulate_from_params", "version": SIM_VERSION,
            **asdict(p), "um_per_px": p.um_per_px, "pathology_drawn": p.pathology,
}
    return SimulatedBscan(hn, ln, _display(clean, p, peak), {k: v - fold for k, v in bounds.items()}, meta)


def hn_realisations(p: BscanParams, k: int, seed: int = 0, folds: bool = True) -> np.ndarray:
    """``k`` independent HN acquisitions of the one scene ``p`` describes, float32 (k, H, W) display [0, 1].

    The scene is :func:`simulate_from_params`'s; only the speckle differs (drawn from ``seed``). Their
    mean estimates the conditional mean a denoiser trained for MSE aims at, which the display's log
    makes differ from the ``clean`` image (the noise-free intensity's display). ``folds=False`` leaves out
    the mirror image of tissue above the top edge, keeping the display mapping of the folded scene.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    img, _, _, peak = _scene(p, np.random.default_rng(p.seed).spawn(2)[0], folds)
    rng = np.random.default_rng(seed)
    return np.stack([_display(_acquire(img, p, p.hn_frames, rng), p, peak) for _ in range(k)])


def simulate_random(seed: int = 0) -> SimulatedBscan:
    """One b-scan with parameters drawn by :func:`random_params` from ``seed``."""
    return simulate_from_params(random_params(seed))


#: Lateral speckle grain (axial, lateral px) and frame counts of the two regimes real scans fall into:
#: neighbouring A-scans sharing speckle (Tian, Willis ``.vol``: lag-1 lateral autocorrelation 0.6-0.8)
#: and independent A-scans (valid.vol, single-frame scans: about 0); ``scripts/split_ceiling.py``.
SPECKLE_REGIMES = {"shared": ((1.4, 1.0), (2, 3, 4)), "independent": ((1.4, 0.3), (1, 2))}


def speckle_params(seed: int, psf: tuple[float, float], frames: int, shape: tuple[int, int] = (496, 512)
                   ) -> BscanParams:
    """:func:`random_params` as a macula of ``shape`` with speckle grain ``psf``, ``frames`` frames and no
    frame-averaging blur or correlation between frames (one of :data:`SPECKLE_REGIMES`)."""
    return replace(random_params(seed), shape=shape, geometry="macula", psf=psf, art_blur_px=0.0, rho=0.0,
                   hn_frames=frames)


def truth_pair(p: BscanParams, k: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One HN acquisition of ``p``'s scene and its conditional mean, the mean of ``k`` further ones
    (:func:`hn_realisations`): what a denoiser trained for MSE aims at, with 1/``k`` of the noise left."""
    reps = hn_realisations(p, k + 1, seed=seed)
    return reps[0], reps[1:].mean(axis=0)


def regime_params(n: int, seed: int = 0, shape: tuple[int, int] = (496, 512)) -> list[BscanParams]:
    """``n`` maculae (:func:`speckle_params`, seeds ``seed`` ..), alternating the two speckle regimes of
    :data:`SPECKLE_REGIMES` (shared speckle first) and cycling through each regime's frame counts."""
    regimes = list(SPECKLE_REGIMES.values())
    out = []
    for i in range(n):
        psf, frames = regimes[i % len(regimes)]
        out.append(speckle_params(seed + i, psf, frames[(i // len(regimes)) % len(frames)], shape))
    return out


def truth_pairs(n: int, k: int = 16, seed: int = 0, shape: tuple[int, int] = (496, 512)
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` simulated maculae as :func:`truth_pair` (noisy scan, conditional mean) of :func:`regime_params`."""
    return [truth_pair(p, k, seed=seed + i) for i, p in enumerate(regime_params(n, seed, shape))]


def realisation_stacks(n: int, k: int, seed: int = 0, shape: tuple[int, int] = (496, 512), folds: bool = True
                       ) -> list[np.ndarray]:
    """``k`` independent acquisitions (:func:`hn_realisations`, ``folds`` passed on) of each of
    :func:`regime_params`'s ``n`` scenes: Noise2Noise pairs whose speckle is as correlated across A-scans
    as on the real scans."""
    return [hn_realisations(p, k, seed=seed + i, folds=folds) for i, p in enumerate(regime_params(n, seed, shape))]
