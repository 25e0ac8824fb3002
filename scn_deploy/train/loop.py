"""The training loop: L1 or L2 + Adam + step-wise halving, resumable checkpoints (validation:
`scn_deploy.train.validation`; how the network starts: `scn_deploy.train.init`)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.presets import preset_config
from scn_deploy.arch.scn import build_network
from scn_deploy.atomic import atomic_write
from scn_deploy.errors import ConfigError
from scn_deploy.modelfile import save_model
from scn_deploy.tasks import task_named
from scn_deploy.train.config import TrainConfig, resolve_precision
from scn_deploy.train.data import (
    Batch,
    BatchMaker,
    ImageBank,
    StepDataset,
    collect_files,
    given_inputs,
    load_bank,
)
from scn_deploy.train.init import (
    fresh_blocks,
    init_from,
    start_as_identity,
    start_blocks_as_identity,
)
from scn_deploy.train.validation import make_val_set, split_validation, validate

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"
LAST_MODEL = "last.safetensors"
BEST_MODEL = "best.safetensors"
SNAPSHOTS = "snapshots"  # step-NNNNNN.safetensors every --snapshot-every steps
LOG_FILE = "log.csv"


@dataclass
class TrainResult:
    out: Path
    steps: int
    start_psnr: float | None
    best_psnr: float | None
    last_psnr: float | None
    seconds: float
    steps_per_s: float
    history: list[dict[str, float]] = field(default_factory=list)


def build_spec(cfg: TrainConfig, channels: int) -> ModelSpec:
    from scn_deploy import __version__

    arch = preset_config(
        cfg.preset,
        task=cfg.task,
        scale=cfg.scale,
        channels=channels,
        num_scales=cfg.num_scales,
        scale_ratio=cfg.scale_ratio,
        conditioned=cfg.level_range is not None,
        **cfg.arch,
    )
    return ModelSpec(
        task=task_named(cfg.task),
        arch=arch,
        preset=cfg.preset,
        sigma=cfg.sigma if task_named(cfg.task).level_name == "sigma" else None,
        quality=cfg.quality if task_named(cfg.task).level_name == "quality" else None,
        level_range=cfg.level_range,
        version=__version__,
        input_kind=cfg.input_kind,
    )


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def _autocast(cfg: TrainConfig):
    if cfg.precision == "fp32":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    return torch.autocast(device_type=device_type, dtype=dtype)


def grad_scaler(cfg: TrainConfig) -> torch.amp.GradScaler:
    """Loss scaling for fp16 training (L1 gradients of small residuals underflow in fp16);
    disabled (a no-op: plain backward and step) for fp32 and bf16."""
    device_type = "cuda" if cfg.device.startswith("cuda") else "cpu"
    return torch.amp.GradScaler(device_type, enabled=cfg.precision == "fp16")


class Trainer:
    """Owns the model, optimiser, schedule and run folder of one training run."""

    def __init__(self, cfg: TrainConfig, *, resume: bool = False) -> None:
        precision, self.precision_reason = resolve_precision(cfg.precision, cfg.device)
        cfg = dataclasses.replace(cfg, precision=precision)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.device = cfg.device
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("--device cuda requested but no CUDA device is available")
        self.rank, self.world = _init_distributed(cfg)
        if self.world > 1 and self.device.startswith("cuda"):
            self.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
            torch.cuda.set_device(self.device)
        state_path = self.out / STATE_FILE
        if resume and not state_path.exists():
            raise ConfigError(f"--resume: no checkpoint at {state_path}")
        if not resume and state_path.exists():
            raise ConfigError(f"{self.out} already holds a run; pass --resume or another --out")
        self.out.mkdir(parents=True, exist_ok=True)

        files = collect_files(cfg.data)
        train_files, val_files = split_validation(files, cfg)
        scale = cfg.scale if task_named(cfg.task).upscales else 1
        self.bank: ImageBank = load_bank(
            train_files, gray=cfg.gray, min_size=cfg.patch * scale, scale=scale
        )
        if cfg.inputs:
            assert self.bank.lr is not None
            shapes = [lr.shape for lr in self.bank.lr]
            self.bank.given = [
                given_inputs(folder, self.bank.names, shapes, cfg.gray) for folder in cfg.inputs
            ]
        channels = self.bank.hr[0].shape[2]
        self.spec = build_spec(cfg, channels)
        self.val_set = make_val_set(val_files, cfg, self.spec)
        self.maker = BatchMaker(
            self.bank,
            task=cfg.task,
            scale=scale,
            patch=cfg.patch,
            batch=cfg.batch,
            seed=cfg.seed,
            sigma=cfg.sigma,
            sigma_range=cfg.sigma_range,
            quality=cfg.quality,
            quality_range=cfg.quality_range,
            condition=self.spec.condition_value if self.spec.conditioned else None,
            rank=self.rank,
        )
        torch.manual_seed(cfg.seed)
        self.model = build_network(self.spec.arch).to(self.device)
        fresh = [name for name, _ in self.model.named_parameters()]
        if cfg.init and not resume:
            fresh = init_from(self.model, cfg.init)
            log.info("initialised from %s; fresh tensors: %s", cfg.init, fresh)
        if (
            not task_named(cfg.task).upscales
            and not resume
            and any(n.startswith("tail.") for n in fresh)
        ):
            start_as_identity(self.model)
        if cfg.init and not resume and (deeper := fresh_blocks(self.model, fresh)):
            start_blocks_as_identity(self.model, deeper)
            log.info("blocks %s are not in %s: they start as identities", deeper, cfg.init)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cfg.lr_factor)
        self.scaler = grad_scaler(cfg)
        self.step = 0
        self.best_psnr: float | None = None
        self.start_psnr: float | None = None
        self.train_seconds = 0.0
        if resume:
            self._load_state(state_path)
        self.forward: Callable[..., torch.Tensor] = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            # The last block's finer-to-coarser convs never reach the output (only the finest
            # scale is read after the last block), so some parameters never get gradients.
            self.forward = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True
            )
        if cfg.compile:
            self.forward = torch.compile(self.forward)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- checkpoints ------------------------------------------------------------------
    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = TrainConfig.from_dict(state["config"])
        for key in (
            "task",
            "scale",
            "preset",
            "num_scales",
            "scale_ratio",
            "gray",
            "batch",
            "patch",
            "seed",
            "held_out_seed",
        ):
            if getattr(saved, key) != getattr(self.cfg, key):
                raise ConfigError(
                    f"--resume: {key} differs from the interrupted run "
                    f"({getattr(saved, key)!r} vs {getattr(self.cfg, key)!r})"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_psnr = state.get("best_psnr")
        self.start_psnr = state.get("start_psnr")
        self.train_seconds = float(state.get("train_seconds", 0.0))

    def training_summary(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "steps": self.step,
            "batch": cfg.batch,
            "patch": cfg.patch,
            "lr": cfg.lr,
            "data": cfg.data,
            **({"inputs": cfg.inputs} if cfg.inputs else {}),
            "train_images": len(self.bank.hr),
            "val_images": len(self.val_set),
            "val_psnr_y": self.best_psnr,
            "device": cfg.device if cfg.device != "cpu" else f"cpu ({os.cpu_count()} cores)",
            "host": platform.node(),
            "precision": cfg.precision,
            "seconds": round(self.train_seconds, 1),
            "init": cfg.init,
            "sigma_range": list(cfg.sigma_range) if cfg.sigma_range else None,
            "quality_range": list(cfg.quality_range) if cfg.quality_range else None,
        }

    def save(self, *, best: bool = False, snapshot: bool = False) -> None:
        self.spec.training = self.training_summary()
        model = self.model.to(memory_format=torch.contiguous_format)
        save_model(self.out / LAST_MODEL, model, self.spec)
        if best:
            save_model(self.out / BEST_MODEL, model, self.spec)
        if snapshot:  # kept for weight averaging (scn_deploy.train.average)
            save_model(self.out / SNAPSHOTS / f"step-{self.step:06d}.safetensors", model, self.spec)
        _atomic_torch_save(
            {
                "config": self.cfg.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step,
                "best_psnr": self.best_psnr,
                "start_psnr": self.start_psnr,
                "train_seconds": self.train_seconds,
            },
            self.out / STATE_FILE,
        )
        if self.cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)

    # -- the loop ------------------------------------------------------------------------
    def _to_device(self, array: np.ndarray | None) -> torch.Tensor | None:
        if array is None:
            return None
        t = torch.as_tensor(array)
        if self.device.startswith("cuda"):
            t = t.pin_memory().to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def batches(self) -> Iterator[Batch]:
        """Batches from the current step on; with --workers, made in DataLoader processes."""
        if self.cfg.workers <= 0:
            for step in range(self.step, self.cfg.steps):
                yield self.maker(step)
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(
            StepDataset(self.maker, self.step, self.cfg.steps),
            batch_size=None,
            shuffle=False,
            num_workers=self.cfg.workers,
            prefetch_factor=4,
            pin_memory=self.device.startswith("cuda"),
        )
        for inputs, targets, cond in loader:
            yield Batch(
                np.asarray(inputs), np.asarray(targets), None if cond is None else np.asarray(cond)
            )

    def train_step(self, batch: Batch) -> float:
        x = self._to_device(batch.inputs)
        y = self._to_device(batch.targets)
        cond = self._to_device(batch.cond)
        with _autocast(self.cfg):
            pred = self.forward(x, cond)
        loss_fn = F.mse_loss if self.cfg.loss == "l2" else F.l1_loss
        loss = loss_fn(pred.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)  # skipped (and the scale lowered) on inf / nan grads
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def run(self, progress: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
        cfg = self.cfg
        log_path = self.out / LOG_FILE
        new_log = not log_path.exists()
        history: list[dict[str, float]] = []
        if not self.is_main:
            return self._run_worker()
        if self.step == 0 and self.start_psnr is None:
            self.start_psnr = validate(self.model, self.val_set, self.spec, self.device)
            self.best_psnr = self.start_psnr
        last_psnr = self.best_psnr
        self.model.train()
        t_run = time.perf_counter()
        steps_run = 0
        loss_sum, loss_n = 0.0, 0
        with log_path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            if new_log:
                writer.writerow(["step", "loss", "lr", "val_psnr_y", "steps_per_s", "seconds"])
                writer.writerow([0, "", cfg.lr, self.start_psnr or "", "", 0])
            try:
                t0 = time.perf_counter()
                for batch in self.batches():
                    loss = self.train_step(batch)
                    self.step += 1
                    steps_run += 1
                    self.train_seconds += time.perf_counter() - t0
                    loss_sum += loss
                    loss_n += 1
                    val = None
                    if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                        val = validate(self.model, self.val_set, self.spec, self.device)
                        last_psnr = val
                    rate = steps_run / max(time.perf_counter() - t_run, 1e-9)
                    record = {
                        "step": self.step,
                        "loss": loss,
                        "lr": self.scheduler.get_last_lr()[0],
                        "steps_per_s": rate,
                        "val_psnr_y": val if val is not None else float("nan"),
                    }
                    if progress:
                        progress(record)
                    if self.step % cfg.log_every == 0 or val is not None:
                        writer.writerow(
                            [
                                self.step,
                                f"{loss_sum / loss_n:.6f}",
                                record["lr"],
                                "" if val is None else f"{val:.4f}",
                                f"{rate:.4f}",
                                f"{self.train_seconds:.1f}",
                            ]
                        )
                        fh.flush()
                        history.append({**record, "loss": loss_sum / loss_n})
                        loss_sum, loss_n = 0.0, 0
                    improved = val is not None and (self.best_psnr is None or val > self.best_psnr)
                    if improved:
                        self.best_psnr = val
                    snapshot = cfg.snapshot_every > 0 and self.step % cfg.snapshot_every == 0
                    if (
                        improved
                        or snapshot
                        or self.step % cfg.ckpt_every == 0
                        or self.step == cfg.steps
                    ):
                        self.save(best=improved, snapshot=snapshot)
                    t0 = time.perf_counter()
            except KeyboardInterrupt:
                self.save()
                raise
        if not (self.out / BEST_MODEL).exists():
            self.save(best=True)
        _finish_distributed(self.world)
        elapsed = time.perf_counter() - t_run
        (self.out / "summary.json").write_text(json.dumps(self.training_summary(), indent=2))
        return TrainResult(
            out=self.out,
            steps=self.step,
            start_psnr=self.start_psnr,
            best_psnr=self.best_psnr,
            last_psnr=last_psnr,
            seconds=self.train_seconds,
            steps_per_s=steps_run / max(elapsed, 1e-9),
            history=history,
        )

    def _run_worker(self) -> TrainResult:
        """Ranks > 0 of a distributed run: train only; rank 0 validates, logs and saves."""
        t_run = time.perf_counter()
        start = self.step
        for batch in self.batches():
            self.train_step(batch)
            self.step += 1
        _finish_distributed(self.world)
        elapsed = time.perf_counter() - t_run
        return TrainResult(
            self.out, self.step, None, None, None, elapsed, (self.step - start) / max(elapsed, 1e-9)
        )


def _init_distributed(cfg: TrainConfig) -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if cfg.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _finish_distributed(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
