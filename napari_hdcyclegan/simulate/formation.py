"""Image formation: circular complex Gaussian speckle through a Gaussian PSF, frame averaging."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_RHO = 0.02
DEFAULT_NOISE_FLOOR = 1e-4
DEFAULT_PSF = (0.8, 0.5)


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
