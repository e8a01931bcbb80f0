"""Public simulation API: b-scans, volumes and multi-eye sets of HN/LN/clean images with boundaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..intensity import inverse_log_display, log_display
from .anatomy import BOUNDARY_NAMES, FOV_UM, _draw_scene, _render, _Scene
from .formation import DEFAULT_NOISE_FLOOR, DEFAULT_PSF, DEFAULT_RHO, intensity_psf, speckle_average

#: Bump when the simulated output changes, so that cached pairs are regenerated.
SIM_VERSION = 4


@dataclass
class _Simulated:
    """Fields shared by simulated b-scans and volumes: hn, ln, clean images, boundaries, metadata."""

    hn: np.ndarray
    ln: np.ndarray
    clean: np.ndarray
    boundaries: dict[str, np.ndarray]
    metadata: dict = field(default_factory=dict)

    @property
    def frames_n(self) -> dict[str, int | None]:
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
                    psf: tuple[float, float] | None, um: tuple[float, float]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
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


def eye_seed(seed: int, eye: int) -> int:
    """Seed of eye ``eye`` in a multi-eye set drawn from ``seed`` (independent streams, reproducible)."""
    return int(np.random.SeedSequence([int(seed), int(eye)]).generate_state(1, np.uint32)[0])


def _package_simulate_volume() -> Callable[..., SimulatedVolume]:
    """``simulate_volume`` as the package exports it, so that a patched package attribute takes effect."""
    from .. import simulate

    return simulate.simulate_volume


def simulate_pairs(n: int = 8, seed: int = 0, shape: tuple[int, int] = (496, 512), hn_frames: int = 12,
                   ln_frames: int = 60, bscans_per_eye: int | None = 8, **kwargs) -> SimulatedVolume:
    """``n`` b-scans from ``ceil(n / bscans_per_eye)`` different eyes (rasters through each fovea).

    ``bscans_per_eye=None`` (or >= n) gives one eye: exactly ``simulate_volume(n, seed, ...)``. Eye
    ``i`` is ``simulate_volume(seed=eye_seed(seed, i))``. ``kwargs`` go to :func:`simulate_volume`.
    """
    volume = _package_simulate_volume()
    if bscans_per_eye is None or bscans_per_eye >= n:
        return volume(n, seed, shape, hn_frames, ln_frames, **kwargs)
    if int(bscans_per_eye) < 1:
        raise ValueError(f"bscans_per_eye must be >= 1 or None, got {bscans_per_eye}")
    parts, seeds = [], []
    for eye in range(-(-int(n) // int(bscans_per_eye))):
        k = min(int(bscans_per_eye), int(n) - eye * int(bscans_per_eye))
        seeds.append(eye_seed(seed, eye))
        parts.append(volume(k, seeds[-1], shape, hn_frames, ln_frames, **kwargs))
    meta = dict(parts[0].metadata)
    meta.update(seed=int(seed), eye_seeds=seeds, bscans_per_eye=int(bscans_per_eye), n_bscans=int(n),
                pathology_drawn=[p.metadata["pathology_drawn"] for p in parts])
    cat = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("hn", "ln", "clean")}
    bounds = {b: np.concatenate([p.boundaries[b] for p in parts]) for b in parts[0].boundaries}
    return SimulatedVolume(cat["hn"], cat["ln"], cat["clean"], bounds, meta)
