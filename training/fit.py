"""Train HDcycleGAN: ``python -m training.fit [--config FILE] [flags]`` (``--help`` lists them).

Phases, by global step: generator pre-training (``--pretrain-steps``), discriminator pre-training
(``--pretrain-d-steps``), then the paper's adversarial objective (``--steps``). Checkpoints go to
``OUT/last`` (every ``--ckpt-every`` steps, atomically, with the exact resume state) and ``OUT/best``
(best validation score: PSNR + 10 x SSIM on pairs plus split PSNR on real scans, or PSNR against the
simulated truth with ``--val-sim``; see ``--select-on``);
``OUT/log.csv``, ``OUT/val.csv`` and ``OUT/loss.png``.
Multi-GPU / multi-process: ``torchrun --nproc_per_node N -m training.fit ...``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_hdcyclegan.devices import resolve_device, resolve_precision
from napari_hdcyclegan.errors import HDCycleGANError, InputError
from napari_hdcyclegan.io.atomic import replace_folder
from napari_hdcyclegan.model.checkpoint import ModelConfig, load_model, save_model
from napari_hdcyclegan.model.networks import Discriminator, Generator

from . import losses, schedule
from .blind_spot import blind_spot_term
from .config import FitConfig, parse_args
from .csvlog import append_csv, drop_rows_after
from .data import CropSampler, DataError
from .job import RUN_FILES, exit_with_parent
from .nets import CycleGenerators, ImagePool, WeightAverage
from .provenance import git_commit, hardware
from .runlog import plot_curves
from .sources import TrainingData, load_training_data
from .teacher import Teacher
from .validate import Validator

LOG_FIELDS = ("step", "phase", "loss_G", "loss_gan", "loss_cycle", "loss_identity", "loss_paired",
              "loss_n2n", "loss_D", "loss_pretrain", "d_real_h", "d_real_l", "d_fake", "lr", "seconds", "loss_r1",
              "loss_teacher", "loss_blind_spot")


class Trainer:
    """Holds networks, optimisers, data and RNG; one :meth:`step` advances one global step."""

    def __init__(self, cfg: FitConfig, data: TrainingData, rank: int = 0, world: int = 1) -> None:
        self.cfg, self.data, self.rank, self.world = cfg, data, rank, world
        self.out = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.manual_seed(cfg.seed)
        self.gens = CycleGenerators(cfg.width, cfg.n_res, cfg.residual).to(self.device)
        self.D = Discriminator(cfg.d_width, cfg.d_levels_for_crop()).to(self.device)
        self.opt_G = torch.optim.Adam(self.gens.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.rng = np.random.default_rng(cfg.seed + 1000 * rank)
        self.pool_h, self.pool_l = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)
        self.step_no = 0
        self.best_score = -np.inf
        self.amp_dtype = self._amp_dtype()
        self.ema: WeightAverage | None = None
        self.reset_average()
        self.teacher = Teacher(cfg.teacher, self.device) if cfg.teacher_weight > 0 else None
        column_split = data.split is not None and cfg.n2n_weight > 0
        if cfg.mean_weight > 0 and ((data.sampler.targets is None and not column_split) or cfg.pretrain_steps <= 0):
            raise SystemExit("error: --mean-weight needs paired data or the column-split term (--n2n-weight) "
                             "and --pretrain-steps > 0 (it is a term of the pre-training)")
        if world > 1 and cfg.n2n_weight > 0:
            # the column-split term runs G_L outside the DDP wrapper: its gradients would not be synced
            raise SystemExit("error: --n2n-weight is not supported with several processes yet")
        self.gens_ddp: nn.Module = self.gens
        self.D_ddp: nn.Module = self.D
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.gens_ddp = DDP(self.gens, device_ids=ids)
            self.D_ddp = DDP(self.D, device_ids=ids)

    @property
    def total_steps(self) -> int:
        return schedule.total_steps(self.cfg)

    def _amp_dtype(self) -> torch.dtype | None:
        """``--amp``: bf16 on a CPU (even without native bf16 convolutions), the ``auto`` precision
        of :func:`napari_hdcyclegan.devices.resolve_precision` on CUDA, fp16 on MPS; else None."""
        if not self.cfg.amp:
            return None
        precision = {"cpu": "bf16", "cuda": "auto"}.get(self.device.type, "fp16")
        return resolve_precision(precision, self.device)

    def _autocast(self) -> torch.autocast:
        dtype = self.amp_dtype
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def reset_average(self) -> None:
        """Start ``--ema``'s weight average afresh (after the weights were replaced, e.g. by --init-from)."""
        self.ema = WeightAverage(self.gens.G_L, self.cfg.ema) if self.cfg.ema > 0 else None

    @property
    def model_g_l(self) -> Generator:
        """The G_L that is validated and exported: the weight average with ``--ema``, else the weights."""
        return cast(Generator, self.ema.module) if self.ema is not None else self.gens.G_L

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(arr).to(self.device)

    # ---- one step -----------------------------------------------------------------------
    def step(self) -> dict[str, float | str]:
        """Advance one global step of the current phase; returns its losses."""
        step = self.step_no
        lr = schedule.lr_at(self.cfg, step)
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        phase = schedule.phase(self.cfg, step)
        row = {"pretrain_G": self._pretrain_g, "pretrain_D": self._pretrain_d, "gan": self._gan}[phase]()
        self.step_no += 1
        return {"step": step + 1, "phase": phase, "lr": lr, **row}

    def _n2n_loss(self) -> torch.Tensor:
        """Column-split Noise2Noise term on real noisy scans (zero without such data or weight)."""
        if self.data.split is None or self.cfg.n2n_weight <= 0:
            return torch.zeros((), device=self.device)
        return losses.column_split_loss(self.gens.G_L, self.data.split, self.rng, self.cfg, self._tensor)

    def _step_generators(self, loss: torch.Tensor) -> None:
        """One optimiser step of the generators on ``loss`` (and the weight average, if kept)."""
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        if self.ema is not None:
            self.ema.update()

    def _split_terms(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted column-split and teacher terms on real scans, and their unweighted values."""
        zero = torch.zeros((), device=self.device)
        n2n = self._n2n_loss()
        teacher = (self.teacher.loss(self.gens.G_L, self.data.split, self.rng, self.cfg.batch, self._tensor)
                   if self.teacher is not None and self.data.split is not None else zero)
        blind = (blind_spot_term(self.gens.G_L, self.data.split, self.rng, self.cfg, self._tensor)
                 if self.cfg.blind_spot_weight > 0 and self.data.split is not None else zero)
        total = self.cfg.n2n_weight * n2n + self.cfg.teacher_weight * teacher + self.cfg.blind_spot_weight * blind
        return total, {"loss_n2n": n2n.item(), "loss_teacher": teacher.item(), "loss_blind_spot": blind.item()}

    def _pretrain_g(self) -> dict[str, float]:
        s: CropSampler = self.data.sampler
        h_np, l_np = s.unpaired_batch(self.rng, self.cfg.batch)
        if s.targets is not None:
            h_np, y_np = s.paired_batch(self.rng, self.cfg.batch)
        else:
            y_np = h_np  # no pairs: G_L learns to reproduce its input (autoencoder), as the paper proposes
        # With column-split pairs and no reference pairs, G_L learns from those alone, not to copy its input.
        g_l_term = (s.targets is not None or self.data.split is None
                    or (self.cfg.n2n_weight <= 0 and self.teacher is None))
        h, y, l = self._tensor(h_np), self._tensor(y_np), self._tensor(l_np)
        with self._autocast():
            loss = torch.zeros((), device=self.device)
            if g_l_term:
                out = self.gens_ddp(h, l, cycle=False, with_h=self.cfg.pretrain_gh)
                # G_L: HN -> target (or autoencoder); G_H: autoencoder of LN images
                loss = losses.paired_loss(self.cfg.paired_loss, out["fake_l"], y)
                if self.cfg.mean_weight > 0 and s.targets is not None:
                    anchor = y if self.cfg.mean_anchor == "target" else h
                    loss = loss + self.cfg.mean_weight * losses.lateral_mean_loss(out["fake_l"], anchor,
                                                                                   self.cfg.mean_width)
                if self.cfg.pretrain_gh:
                    loss = loss + F.l1_loss(out["fake_h"], l)
            elif self.cfg.pretrain_gh:  # G_L learns from the column splits only: no G_L pass here
                loss = F.l1_loss(self.gens.G_H(l), l)
            split_loss, split_row = self._split_terms()
            loss = loss + split_loss
        self._step_generators(loss)
        return {"loss_pretrain": loss.item(), **split_row}

    def _pretrain_d(self) -> dict[str, float]:
        h, l = (self._tensor(a) for a in self.data.sampler.unpaired_batch(self.rng, self.cfg.batch))
        with self._autocast():
            logits = self.D_ddp(torch.cat([h, l]))
            loss = losses.discriminator_loss(logits, len(h), len(l))
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        return {"loss_D": loss.item()}

    def _gan(self) -> dict[str, float]:
        cfg, s = self.cfg, self.data.sampler
        y = None
        h_np, l_np = s.unpaired_batch(self.rng, cfg.batch)
        if cfg.paired_weight > 0 and s.targets is not None:
            h_np, y_np = s.paired_batch(self.rng, cfg.batch)
            y = self._tensor(y_np)
        h, l = self._tensor(h_np), self._tensor(l_np)
        n = len(h)
        # Generator step: the discriminator is fixed (no grads), its current weights judge the fakes.
        self.D.requires_grad_(False)
        with self._autocast():
            out = self.gens_ddp(h, l, identity=cfg.identity_weight > 0)
            d_fake = self.D(torch.cat([out["fake_h"], out["fake_l"]]))
            loss_gan = losses.generator_gan_loss(d_fake[:n], d_fake[n:])
            loss_cyc = losses.cycle_loss(h, out["rec_h"], l, out["rec_l"])
            loss = cfg.lambda_gan * loss_gan + cfg.lambda_cycle * loss_cyc
            loss_id = loss_pair = torch.zeros((), device=self.device)
            if cfg.identity_weight > 0:
                loss_id = F.l1_loss(out["id_l"], l) + F.l1_loss(out["id_h"], h)
                loss = loss + cfg.identity_weight * loss_id
            if y is not None:
                loss_pair = losses.paired_loss(cfg.paired_loss, out["fake_l"], y)
                loss = loss + cfg.paired_weight * loss_pair
            split_loss, split_row = self._split_terms()
            loss = loss + split_loss
        self._step_generators(loss)
        self.D.requires_grad_(True)
        # Discriminator step on detached fakes: eq. (3), one batch [real HN, real LN, fakes].
        fake_h = self.pool_h.query(out["fake_h"].detach().float(), self.rng)
        fake_l = self.pool_l.query(out["fake_l"].detach().float(), self.rng)
        with self._autocast():
            logits = self.D_ddp(torch.cat([h, l, fake_h, fake_l]))
            loss_d = cfg.lambda_gan * losses.discriminator_loss(logits, n, n)
        loss_r1 = (losses.r1_penalty(self.D, torch.cat([h, l]), n) if cfg.r1_gamma > 0
                   else torch.zeros((), device=self.device))
        loss_d = loss_d + cfg.lambda_gan * cfg.r1_gamma / 2 * loss_r1
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        return {"loss_G": loss.item(), "loss_gan": loss_gan.item(), "loss_cycle": loss_cyc.item(),
                "loss_identity": loss_id.item(), "loss_paired": loss_pair.item(), **split_row,
                "loss_D": loss_d.item(), "loss_r1": loss_r1.item(),
                **losses.class_probabilities(logits.detach().float(), n, n)}

    # ---- checkpoints --------------------------------------------------------------------
    def model_config(self, metrics: dict | None = None) -> ModelConfig:
        cfg = self.cfg
        return ModelConfig(
            generator_width=cfg.width, n_res=cfg.n_res, residual=cfg.residual, discriminator_width=cfg.d_width,
            discriminator_levels=cfg.d_levels_for_crop(), normalisation=cfg.model_normalisation(), name=cfg.name,
            lateral_sigma=cfg.lateral_sigma,
            trained=self.step_no > 0,
            provenance={"data": self.data.description, "step": self.step_no, "fit_config": cfg.to_json(),
                        "commit": git_commit(), "torch": torch.__version__, "hardware": hardware(self.device),
                        "metrics": metrics or {}},
        )

    def nets(self) -> dict[str, nn.Module]:
        """The trained weights (G_L as it trains, not its average)."""
        return {"G_L": self.gens.G_L, "G_H": self.gens.G_H, "D": self.D}

    def resume_state(self) -> dict:
        average = {} if self.ema is None else {"G_L_trained": self.gens.G_L.state_dict(),
                                               "G_L_average": self.ema.state_dict()}
        return {
            **average,
            "step": self.step_no, "best_score": float(self.best_score),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "rng_numpy": json.dumps(self.rng.bit_generator.state),
            "rng_torch": torch.get_rng_state(),
            "pool_h": list(self.pool_h.images), "pool_l": list(self.pool_l.images),
        }

    def rank_states(self) -> list[dict] | None:
        """Every rank's own RNG state and fake pools, gathered from all ranks (a collective: every rank
        calls it at the same step); None in a single process, whose :meth:`resume_state` holds them."""
        if self.world <= 1:
            return None
        import torch.distributed as dist

        mine = {"rng_numpy": json.dumps(self.rng.bit_generator.state), "rng_torch": torch.get_rng_state(),
                "pool_h": [t.cpu() for t in self.pool_h.images], "pool_l": [t.cpu() for t in self.pool_l.images]}
        states: list = [None] * self.world
        dist.all_gather_object(states, mine)
        return states

    def save(self, name: str = "last", metrics: dict | None = None, with_state: bool = True,
             ranks: list[dict] | None = None) -> Path:
        """Write ``OUT/name`` as a new folder, then swap it in: a kill never leaves half a checkpoint.

        ``ranks`` (:meth:`rank_states`) lets each rank of a distributed run resume its own RNG and pools.
        """
        tmp = self.out / f"{name}.new"
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(tmp, {**self.nets(), "G_L": self.model_g_l}, self.model_config(metrics))
        if with_state:
            torch.save({**self.resume_state(), **({"ranks": ranks} if ranks else {})}, tmp / "resume.pt")
        return replace_folder(tmp, self.out / name)  # the previous one waits as OUT/name.old meanwhile

    def init_from(self, model_dir: str | Path) -> list[str]:
        """Start from the weights of another model directory (the parts it holds).

        Raises SystemExit (one line) when its G_L does not fit this run's generator or was trained with
        another residual setting or input mapping: the run would silently start from scratch, or from
        weights wired to another output.
        """
        from safetensors import safe_open

        with safe_open(str(Path(model_dir) / "model.safetensors"), "pt") as fh:
            present = {k.split(".")[0] for k in fh.keys()}
        parts = tuple(p for p in ("G_L", "G_H", "D") if p in present)
        nets, base = load_model(model_dir, parts=parts)
        _check_base(base, self.cfg, model_dir)
        loaded = []
        for part, net in nets.items():
            try:
                self.nets()[part].load_state_dict(net.state_dict())
                loaded.append(part)
            except RuntimeError:  # e.g. a discriminator of another depth: that part starts fresh
                continue
        if "G_L" not in loaded:
            raise SystemExit(f"error: --init-from {model_dir}: its G_L (width {base.generator_width}, "
                             f"{base.n_res} residual blocks) does not fit this run's generator (width "
                             f"{self.cfg.width}, {self.cfg.n_res}); pass the same --width and --n-res")
        return loaded

    def load(self, name: str = "last") -> None:
        """Restore weights, optimisers, step, RNG and fake pools from ``OUT/name``."""
        folder = self.out / name
        if not folder.exists() and (self.out / f"{name}.old").exists():
            folder = self.out / f"{name}.old"  # killed between the two renames of save()
        nets, _ = load_model(folder, parts=("G_L", "G_H", "D"))
        for part, net in nets.items():
            self.nets()[part].load_state_dict(net.state_dict())
        state = torch.load(folder / "resume.pt", map_location=self.device, weights_only=True)
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.step_no = int(state["step"])
        self.best_score = float(state["best_score"])
        own = state
        if len(state.get("ranks") or []) == self.world:  # a distributed run: this rank's own draws
            own = state["ranks"][self.rank]
        self.rng.bit_generator.state = json.loads(own["rng_numpy"])
        torch.set_rng_state(own["rng_torch"])
        self.pool_h.images = [t.to(self.device) for t in own["pool_h"]]
        self.pool_l.images = [t.to(self.device) for t in own["pool_l"]]
        if self.ema is not None:  # the folder's G_L is the average; the trained weights are in resume.pt
            self.gens.G_L.load_state_dict(state["G_L_trained"])
            self.ema.load_state_dict(state["G_L_average"])


def _check_base(base: ModelConfig, cfg: FitConfig, model_dir: str | Path) -> None:
    """Refuse a base model trained with another residual setting or input mapping than this run."""
    if base.residual != cfg.residual:
        raise SystemExit(f"error: --init-from {model_dir} was trained with residual {str(base.residual).lower()}; "
                         f"pass --residual {str(base.residual).lower()}")
    ours = cfg.model_normalisation()
    for key in ("method", "log_input"):
        if base.normalisation.get(key) != ours.get(key):
            raise SystemExit(f"error: --init-from {model_dir} maps its input with normalisation {key} "
                             f"{base.normalisation.get(key)!r}, this run with {ours.get(key)!r}")


def run(cfg: FitConfig, resume: bool = False) -> Path:
    """Train as configured; returns the run folder."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    try:
        device = resolve_device(cfg.device)  # an unknown or absent device fails before anything runs
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from exc
    if world > 1:
        import gc

        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            out = _train(cfg, resume, device, rank, world)
            dist.barrier()  # no rank tears down gloo while another still saves: it can abort in gloo's threads
            return out
        finally:
            gc.collect()  # the DDP wrappers go before the process group they hold
            dist.destroy_process_group()
    return _train(cfg, resume, device, rank, world)


def _train(cfg: FitConfig, resume: bool, device: torch.device, rank: int, world: int) -> Path:
    """The training loop of :func:`run` (inside the process group when there is one)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        data = load_training_data(cfg)
    except DataError:
        if made and rank == 0 and not any(out.iterdir()):
            out.rmdir()  # a start that failed on its data leaves no empty run folder behind
        raise
    trainer = Trainer(cfg, data, rank, world)
    if resume:
        if not (out / "last").exists() and not (out / "last.old").exists():
            raise SystemExit(f"error: --resume but no checkpoint in {out / 'last'}")
        trainer.load("last")
        if rank == 0:
            for log in ("log.csv", "val.csv"):
                drop_rows_after(out / log, trainer.step_no)
    elif held := [n for n in RUN_FILES if (out / n).exists()]:  # a killed run may have no last/ yet
        raise SystemExit(f"error: {out} already holds a run ({', '.join(held)}); pass --resume (from its last "
                         "checkpoint) or choose another --out")
    elif cfg.init_from:
        print(f"initialised {trainer.init_from(cfg.init_from)} from {cfg.init_from}", file=sys.stderr)
        trainer.reset_average()
    if rank == 0:
        (out / "fit_config.json").write_text(json.dumps(cfg.to_json(), indent=2))
    validator = Validator(cfg, data, out) if rank == 0 and (data.val or data.val_split or cfg.val_sim) else None
    from tqdm import tqdm

    bar = tqdm(total=trainer.total_steps, initial=trainer.step_no, disable=rank != 0, dynamic_ncols=True,
               file=sys.stderr, mininterval=2.0)
    t0 = time.perf_counter()
    while trainer.step_no < trainer.total_steps:
        row = trainer.step()
        row["seconds"] = round(time.perf_counter() - t0, 2)
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.startswith("loss") and v})
        step = trainer.step_no
        if rank == 0:
            append_csv(out / "log.csv", row, LOG_FIELDS)
            if validator is not None and (step % cfg.val_every == 0 or step == trainer.total_steps):
                scores = validator.run(trainer.model_g_l, step)
                bar.write(validator.format(scores))
                if scores["score"] > trainer.best_score:
                    trainer.best_score = scores["score"]
                    trainer.save("best", metrics=scores, with_state=False)
        if step % cfg.ckpt_every == 0 or step == trainer.total_steps:
            ranks = trainer.rank_states()  # every rank, after rank 0's validation: the state a resume restarts from
            if rank == 0:
                trainer.save("last", ranks=ranks)
                plot_curves(out)
    bar.close()
    return out


#: Free space (bytes) under which a failed save is reported as a full disk.
LOW_DISK_BYTES = 100_000_000


def _free_bytes(out: str) -> int | None:
    """Free bytes on the disk holding run folder ``out`` (None when unknown)."""
    try:
        return shutil.disk_usage(Path(out) if Path(out).exists() else Path(out).parent).free
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    cfg, resume = parse_args(argv)
    exit_with_parent()
    try:
        run(cfg, resume)
    except (DataError, HDCycleGANError, OSError) as exc:  # bad data, a broken checkpoint, a folder it cannot write
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # torch reports a full disk while saving as "unexpected pos ..."
        free = _free_bytes(cfg.out)
        if free is None or free >= LOW_DISK_BYTES:
            raise
        print(f"error: {cfg.out}: the disk is full ({free / 1e6:.0f} MB free) while saving a checkpoint ({exc}); "
              "free space and resume with --resume (the last complete checkpoint stands)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # checkpoints are written atomically: the last one stands
        print(f"interrupted; `python -m training.fit --out {cfg.out} --resume` continues from the last "
              "checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
