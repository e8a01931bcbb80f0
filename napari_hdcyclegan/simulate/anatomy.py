"""Anatomy: a layered macula scene (3-D, in µm and mm around the fovea) rendered as display levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Heidelberg Spectralis sampling of a 496 x 512 b-scan (µm per pixel).
SPECTRALIS_UM_PER_PX = {"axial": 3.87, "lateral": 11.45}
#: Field of view of the simulated b-scan (µm): 496 x 3.87 deep, 512 x 11.45 wide, whatever the shape.
FOV_UM = (496 * SPECTRALIS_UM_PER_PX["axial"], 512 * SPECTRALIS_UM_PER_PX["lateral"])
PATHOLOGIES = (None, "drusen", "fluid", "detachment", "random")

# Layers from the vitreous down: (name, thickness µm away from the fovea, display level).
# Thicknesses and levels follow docs/oct_notes.md; SRF and DRU are zero-thick unless a pathology fills them.
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
    #: Peripapillary circle scan: x is the arc length (mm) around the disc, no pit, RNFL double hump.
    circle_mm: float | None = None
    #: Vessel shadows darken multiplicatively and fade with depth (False: today's additive shadow).
    soft_shadows: bool = False


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
    if scene.circle_mm:  # around the disc: no fovea, the circle's tilt makes a sinusoidal BM
        pit, fov = np.ones_like(x_mm), np.zeros_like(x_mm)
        r2 = np.zeros_like(x_mm)
    thick = {}
    for name, t, _ in _LAYERS:
        if t <= 0 or name == "CHO":
            continue
        th = t * scene.thick_scale[name] * (1.0 + 0.07 * scene.thick_fields[name](x_mm, y_mm))
        if name in _INNER:
            th = th * pit
        if name == "RNFL" and scene.circle_mm:  # superior/inferior bundles: the double hump
            th = th * (1.6 + 1.3 * np.cos(4 * np.pi * x_mm / scene.circle_mm) ** 2)
        elif name == "RNFL":  # thicker towards the optic disc (nasal side), thin at the fovea
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
    if scene.circle_mm:
        bm = bm - scene.tilt_um[0] * x_mm / half_w + scene.tilt_um[0] * np.cos(2 * np.pi * x_mm / scene.circle_mm)
    return thick, bm


def _boundaries_um(thick: dict[str, np.ndarray], bm: np.ndarray) -> list[np.ndarray]:
    """Interface depths (µm) top to bottom: built upward from Bruch's membrane, downward to the CSI."""
    names = _NAMES
    i_bm = names.index("CHO")  # BM is the top of the choroid
    tops: list[np.ndarray] = [bm] * len(names)  # every entry is overwritten below but index 0
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
        frac = np.asarray(upper - lower)
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
        if scene.soft_shadows:  # a multiplicative shadow that fades over ~400 µm below the vessel
            fade = np.exp(-np.clip(rows - (zc + hz)[None, :], 0.0, None) * np.float32(um_z / 400.0))
            level *= 1.0 - np.float32(shadow) * np.sqrt(prof)[None, :].astype(np.float32) * below * fade
        else:
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

