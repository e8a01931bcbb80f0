"""Inference throughput of the whole volume pipeline at 496x512 (Spectralis b-scans).

    python benchmarks/bench_inference.py [--batches 1 4 8] [--n 8] [--weights DIR] [--bm3d]

Each row runs in a fresh subprocess (so that peak memory is that row's own): read a uint8 volume,
per-b-scan robust-percentile normalisation, transfer, generator, copy back and mapping to the input
dtype, exactly as ``Denoiser.denoise`` does. Reports b-scans/s, peak memory (CPU: peak RSS of the
process, ``resource.ru_maxrss``; CUDA: ``torch.cuda.max_memory_allocated``), the wavelet baseline's
seconds per b-scan in the same run, and the max |bf16 - fp32| of the output. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SHAPE = (496, 512)


def make_volume(n: int) -> np.ndarray:
    """A uint8 Spectralis-like volume: the shipped simulated sample, tiled to ``n`` b-scans."""
    from napari_hdcyclegan.simulate import load_sample_volume

    hn = load_sample_volume().hn
    vol = np.clip(np.rint(hn * 255), 0, 255).astype(np.uint8)
    reps = -(-n // vol.shape[0])
    return np.concatenate([vol] * reps)[:n]


def make_denoiser(weights: str | None, device: str, precision: str, batch: int):
    """A paper-size denoiser (trained weights if given, else seeded random weights)."""
    import torch

    from napari_hdcyclegan.engine import Denoiser, get_denoiser
    from napari_hdcyclegan.model.checkpoint import ModelConfig
    from napari_hdcyclegan.model.networks import Generator

    if weights:
        den = get_denoiser(weights, device)
        den.precision = precision
    else:
        torch.manual_seed(0)
        den = Denoiser(Generator(16), ModelConfig(name="random"), device, precision=precision)
    den.batch_size = batch
    if den.device.type == "cpu" and den.autocast_dtype is not None:
        from napari_hdcyclegan.engine import cpu_has_native_bf16

        # without native bf16, channels_last is the faster of the two emulated paths (8x here)
        den.channels_last = not cpu_has_native_bf16()
    return den


def run_row(device: str, precision: str, batch: int, n: int, weights: str | None) -> dict:
    """Time ``denoise`` on ``n`` b-scans after one warm-up batch; returns the row as a dict."""
    import torch

    den = make_denoiser(weights, device, precision, batch)
    vol = make_volume(n)
    den.denoise(vol[:batch])  # warm-up: allocator, oneDNN / cuDNN kernel choice
    cuda = den.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    den.denoise(vol)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"device": str(den.device), "precision": precision, "autocast": str(den.autocast_dtype),
            "batch": batch, "n": n, "seconds": dt, "bscans_per_s": n / dt, "peak_mib": peak / 2**20,
            "peak_kind": "cuda allocated" if cuda else "process RSS", "threads": torch.get_num_threads()}


def bf16_diff(device: str, weights: str | None) -> dict:
    """max / mean |bf16 - fp32| of the output on one sample b-scan, in [0, 1] units of its range."""
    vol = make_volume(1)
    den = make_denoiser(weights, device, "fp32", 1)
    ref = den.denoise(vol.astype(np.float32) / 255)
    den = make_denoiser(weights, device, "bf16", 1)
    low = den.denoise(vol.astype(np.float32) / 255)
    d = np.abs(low - ref)
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "p99_abs": float(np.percentile(d, 99))}


def baseline_seconds(name: str, k: int) -> float:
    """Seconds per b-scan of a classical baseline on ``k`` sample b-scans."""
    from napari_hdcyclegan.baselines import BASELINES

    vol = make_volume(k)
    t0 = time.perf_counter()
    BASELINES[name](vol)
    return (time.perf_counter() - t0) / k


def _child(args: list[str]) -> dict:
    """Run one measurement in a fresh interpreter and parse its JSON line."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--n", type=int, default=8, help="b-scans per timed run (default 8)")
    parser.add_argument("--weights", help="model directory or shipped name (default: random weights)")
    parser.add_argument("--cuda-n", type=int, default=512, help="b-scans per timed CUDA run")
    parser.add_argument("--cuda-batches", type=int, nargs="+", default=[1, 4, 8, 32, 64])
    parser.add_argument("--bm3d", action="store_true", help="also time BM3D (slow: seconds per b-scan)")
    parser.add_argument("--full-bf16", action="store_true",
                        help="all batch sizes for CPU bf16 even without native bf16 (very slow)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.row:  # child mode
        kind, *rest = args.row.split(",")
        if kind == "time":
            device, precision, batch, n = rest
            out = run_row(device, precision, int(batch), int(n), args.weights)
        elif kind == "diff":
            out = bf16_diff(rest[0], args.weights)
        else:
            out = {"seconds_per_bscan": baseline_seconds(rest[0], int(rest[1]))}
        print(json.dumps(out))
        return 0

    import torch

    from napari_hdcyclegan.engine import cpu_has_native_bf16

    native = cpu_has_native_bf16()
    w = ["--weights", args.weights] if args.weights else []
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
          f"native CPU bf16: {native}, load average {os.getloadavg()[0]:.1f}, "
          f"weights: {args.weights or 'random (seed 0)'}")
    rows = []
    plans = [("cpu", "fp32", b, args.n) for b in args.batches]
    bf16_batches = args.batches if (native or args.full_bf16) else args.batches[:1]
    plans += [("cpu", "bf16", b, args.n if (native or args.full_bf16) else 1) for b in bf16_batches]
    if torch.cuda.is_available():
        plans += [("cuda", p, b, args.cuda_n) for p in ("fp32", "bf16", "fp16") for b in args.cuda_batches]
    for device, precision, batch, n in plans:
        row = _child(["--row", f"time,{device},{precision},{batch},{n}", *w])
        row.setdefault("device", device), row.setdefault("precision", precision), row.setdefault("batch", batch)
        rows.append(row)
        print(".", end="", flush=True, file=sys.stderr)
    wavelet = _child(["--row", "base,wavelet,2"])
    bm3d = _child(["--row", "base,bm3d,1"]) if args.bm3d else None
    diffs = {"cpu": _child(["--row", "diff,cpu", *w])}
    if torch.cuda.is_available():
        diffs["cuda"] = _child(["--row", "diff,cuda", *w])
    print(file=sys.stderr)

    print("\n| device | precision | batch | b-scans | b-scans/s | s/b-scan | peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['device']} | {r['precision']} | {r['batch']} | - | error: {r['error']} | | |")
            continue
        note = "" if r["device"] != "cpu" or r["precision"] == "fp32" or native else " (emulated)"
        print(f"| {r['device']} | {r['precision']}{note} | {r['batch']} | {r['n']} | {r['bscans_per_s']:.2f} "
              f"| {1 / r['bscans_per_s']:.3f} | {r['peak_mib']:.0f} ({r['peak_kind']}) |")
    if "seconds_per_bscan" in wavelet:
        s = wavelet["seconds_per_bscan"]
        print(f"| cpu | wavelet baseline | 1 | 2 | {1 / s:.2f} | {s:.3f} | |")
    if bm3d and "seconds_per_bscan" in bm3d:
        s = bm3d["seconds_per_bscan"]
        print(f"| cpu | BM3D baseline | 1 | 1 | {1 / s:.3f} | {s:.2f} | |")
    for dev, d in diffs.items():
        if "error" in d:
            print(f"bf16 vs fp32 on {dev}: error {d['error']}")
        else:
            print(f"bf16 vs fp32 on {dev}, output in [0, 1] units: max {d['max_abs']:.4f}, "
                  f"p99 {d['p99_abs']:.4f}, mean {d['mean_abs']:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
