"""Laine et al. (2019)'s Bayesian blind spot on the real scans: a probe (docs/real_training.md, section 38).

A blind-spot network predicts, from outside a 3 x 3 box around each pixel, a prior mean ``mu`` and a
variance ``v`` (prior plus noise), trained by the Gaussian likelihood of the raw pixel at the box centres
of ``training.blind_spot.box_mask``; the output is the posterior mean ``mu + g (y - mu)``, ``g = (v - n) / v``,
with a brightness-dependent noise level ``n``. The network is the shipped ``spectralis-real`` G_L with a
variance head. Measured, not shipped: above the shipped weights' curve on Tian, below them over the 15 real
scans, and 54 generator passes per b-scan::

    python scripts/blind_spot_posterior.py train RUN --steps 1500          # resumable; RUN/model_STEP.pt
    python scripts/blind_spot_posterior.py score RUN/model_1500.pt --subjects 5 --variants 0.5:1.1,0.5:0.8
    python scripts/blind_spot_posterior.py score RUN/model_1500.pt --subjects 1,2,3,4 --bscans 4,9

``score`` prints split PSNR / layer CNR / distance from the shipped weights' lateral-smoothing curve
(``tradeoff_curve.py``) on the Tian b-scans, per ``C:S`` (noise level C x the 10th percentile of ``v`` per
brightness bin, then lateral smoothing S px).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lateral_sigma_check import off_floor  # noqa: E402 - a sibling script

from napari_hdcyclegan.model.networks import Generator, lateral_smooth  # noqa: E402
from training.blind_spot import box_mask  # noqa: E402

CELL = (6, 9)  # box_mask's cell for a 3 x 3 box: every centre position of a cell is one inference pass
PAD = 8


class BlindSpotGaussian(nn.Module):
    """A generator's output as the prior mean and a 3 x 3 conv on its last features as ``log v``."""

    def __init__(self, gen: Generator, v0: float = 0.005) -> None:
        super().__init__()
        self.gen = gen
        self.head = nn.Conv2d(2 * gen.width, 1, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(v0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, log v)`` for an (N, 1, H, W) batch, H and W multiples of 8, float32."""
        acts = dict(self.gen.stages(x))
        logv = self.head(torch.cat([acts["up3"], acts["init"]], 1))
        return acts["final"].float(), logv.float().clamp(-14.0, 2.0)


def likelihood_loss(model: BlindSpotGaussian, full: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian negative log-likelihood of the raw pixels at the centres of hidden 3 x 3 boxes."""
    hidden, source, centre = (tuple(torch.as_tensor(a) for a in idx)
                              for idx in box_mask(rng, (full.shape[0], full.shape[2], full.shape[3]), 1, 1))
    image = full[:, 0]
    masked = image.clone()
    masked[hidden] = image[source]
    mu, logv = model(masked[:, None])
    y = image[centre].float()
    m, lv = mu[:, 0][centre], logv[:, 0][centre]
    return ((y - m) ** 2 * torch.exp(-lv) + lv).mean()


def mu_and_v(model: BlindSpotGaussian, unit: np.ndarray, chunk: int = 6, bf16: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """``mu`` and ``v`` at every pixel of a [0, 1] b-scan, each from a pass that hides its own 3 x 3 box
    (``bf16``: under CPU autocast, as the section's figures were measured)."""
    h, w = unit.shape
    extra = (-(h + 2 * PAD)) % 8, (-(w + 2 * PAD)) % 8
    pad = np.pad(np.asarray(unit, np.float32), ((PAD, PAD + extra[0]), (PAD, PAD + extra[1])), mode="reflect")
    mu, logv = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    dy, dx = (a.ravel() for a in np.meshgrid(np.arange(-1, 2), np.arange(-1, 2), indexing="ij"))
    passes = [(a, b) for a in range(CELL[0]) for b in range(CELL[1])]
    for i in range(0, len(passes), chunk):
        batch, centres = [], []
        for a, b in passes[i:i + chunk]:
            cy, cx = (c.ravel() + PAD for c in np.meshgrid(np.arange(a, h, CELL[0]), np.arange(b, w, CELL[1]),
                                                           indexing="ij"))
            hy, hx = (cy[:, None] + dy[None]).ravel(), (cx[:, None] + dx[None]).ravel()
            masked = pad.copy()
            masked[hy, hx] = pad[hy, hx + 3]  # the box beside it, as in training
            batch.append(masked)
            centres.append((cy, cx))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out_mu, out_lv = model(torch.from_numpy(np.stack(batch))[:, None])
        for k, (cy, cx) in enumerate(centres):
            mu[cy - PAD, cx - PAD] = out_mu[k, 0].numpy()[cy, cx]
            logv[cy - PAD, cx - PAD] = out_lv[k, 0].numpy()[cy, cx]
    return mu, np.exp(logv)


def noise_level(mu: np.ndarray, v: np.ndarray, tissue: np.ndarray, c: float, q: float = 10.0,
                bins: int = 12) -> np.ndarray:
    """``c`` x the ``q``-th percentile of ``v`` per brightness bin of ``mu`` (equal counts, ``tissue`` pixels),
    interpolated at each pixel's ``mu``: in display units the noise grows with brightness."""
    mm, vv = (mu[tissue], v[tissue]) if tissue.any() else (mu.ravel(), v.ravel())
    edges = np.percentile(mm, np.linspace(0, 100, bins + 1))
    centres, levels = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mm >= lo) & (mm <= hi)
        if sel.sum() > 50:
            centres.append(float(np.median(mm[sel])))
            levels.append(float(np.percentile(vv[sel], q)))
    if not centres:
        return np.full_like(mu, c * float(np.percentile(vv, q)))
    return c * np.interp(mu, centres, levels)


def posterior(unit: np.ndarray, mu: np.ndarray, v: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """The posterior mean ``mu + g (y - mu)``, ``g = clip((v - n) / v, 0, 1)``."""
    g = np.clip((v - n) / v, 0.0, 1.0)
    return mu + g * (np.asarray(unit, np.float64) - mu)


def denoiser(model: BlindSpotGaussian, c: float, sigma: float, bf16: bool = False):
    """An 8-bit-range b-scan in, the posterior (then lateral smoothing ``sigma``) out, in the same range."""
    def run(x: np.ndarray) -> np.ndarray:
        unit = np.asarray(x, np.float64) / 255.0
        mu, v = mu_and_v(model, unit, bf16=bf16)
        out = posterior(unit, mu, v, noise_level(mu, v, off_floor(x, 3.0), c)) * 255.0
        return np.clip(lateral_smooth(torch.from_numpy(out), sigma).numpy(), 0.0, 255.0)
    return run


def load(path: str | None) -> BlindSpotGaussian:
    """The shipped ``spectralis-real`` G_L with a fresh head, or a saved state (tensors only)."""
    from napari_hdcyclegan.model.checkpoint import load_model

    model = BlindSpotGaussian(load_model("spectralis-real")[0]["G_L"])
    if path:
        model.load_state_dict(torch.load(path, weights_only=True))
    return model


def train(run: Path, steps: int, lr: float, seed: int, every: int = 50) -> None:
    """The likelihood on full-width crops of the real scans (the shipped polish's data), resumable."""
    from training.config import parse_args
    from training.frames import MixedSampler
    from training.sources import load_training_data

    run.mkdir(parents=True, exist_ok=True)
    cfg, _ = parse_args(["--data", "real", "--real-duke", "false", "--crop", "192", "--batch", "8",
                         "--blind-spot-weight", "1", "--device", "cpu", "--out", str(run / "data")])
    data = load_training_data(cfg)
    split = data.split.first if isinstance(data.split, MixedSampler) else data.split
    model = load(None)
    opt = torch.optim.Adam([{"params": model.gen.parameters(), "lr": lr},
                            {"params": model.head.parameters(), "lr": 10 * lr}])
    rng, step = np.random.default_rng(seed), 0
    torch.manual_seed(seed)
    state = run / "state.pt"
    if state.exists():
        saved = torch.load(state, weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        step, rng.bit_generator.state = saved["step"], json.loads(saved["rng"])
    with open(run / "log.jsonl", "a") as log:
        t0 = time.time()
        while step < steps:
            f = 0.1 + 0.45 * (1 + math.cos(math.pi * step / steps))
            for group, base in zip(opt.param_groups, (lr, 10 * lr)):
                group["lr"] = base * f
            full = torch.from_numpy(split.full_batch(rng, cfg.batch)[0])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = likelihood_loss(model, full, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            log.write(json.dumps({"step": step, "nll": loss.item(), "s": round(time.time() - t0, 1)}) + "\n")
            if step % every == 0 or step == steps:
                tmp = run / "state.tmp"
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                            "rng": json.dumps(rng.bit_generator.state)}, tmp)
                tmp.replace(state)  # atomic: an interrupted save keeps the last state
                if step % 250 == 0 or step == steps:
                    torch.save(model.state_dict(), run / f"model_{step}.pt")


def score(weights: str, subjects: list[int], variants: list[tuple[float, float]], bscans: list[int] | None = None
          ) -> None:
    """Each ``(C, S)`` against ``spectralis-real``'s lateral-smoothing curve on the Tian b-scans (of each subject,
    the ``bscans``-th, counted from 1; default all)."""
    import tradeoff_curve as tc

    if not (tc.SHARED / "tools" / "real_scan_check.py").is_file():
        raise SystemExit(f"{tc.SHARED}: shared folder with tools/real_scan_check.py not found")
    sys.path.insert(0, str(tc.SHARED / "tools"))
    import real_scan_check as rc

    from napari_hdcyclegan.engine import cpu_has_native_bf16, get_denoiser

    torch.set_num_threads(1)
    model = load(weights).eval()
    root = str(tc.SHARED / "data/layers/tian2015_octlayers")
    scans = [s for k in subjects for i, s in enumerate(rc.load_subject(root, k), 1) if not bscans or i in bscans]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = get_denoiser("spectralis-real", "cpu")
    curve = [tc.score(fn, scans, rc) for fn in tc.lsc.sweep(ref, [0.8, 1.1, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0]).values()]
    for c, s in variants:
        sp, cn = tc.score(tc.lsc.cached(denoiser(model, c, s, bf16=cpu_has_native_bf16()), 64), scans, rc)
        print(f"C {c:g}, S {s:g}: {sp:.3f} / {cn:.3f} / off {cn - tc.curve_cnr(curve, sp):+.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("run", type=Path)
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=80)
    s = sub.add_parser("score")
    s.add_argument("weights")
    s.add_argument("--subjects", default="5")
    s.add_argument("--variants", default="0.5:1.1,0.5:0.8")
    s.add_argument("--bscans", default="", help="b-scans of each subject, from 1 (e.g. 4,9); default all")
    a = p.parse_args()
    if a.cmd == "train":
        torch.set_num_threads(1)
        train(a.run, a.steps, a.lr, a.seed)
    else:
        variants = [tuple(float(v) for v in x.split(":")) for x in a.variants.split(",")]
        bscans = [int(b) for b in a.bscans.split(",")] if a.bscans else None
        score(a.weights, [int(k) for k in a.subjects.split(",")], variants, bscans)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
