"""Validation during training: held-out images (split by seed, never a benchmark image),
degraded once with a fixed seed, and the PSNR-Y of a network on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.scn import SCN
from scn_deploy.errors import DataError
from scn_deploy.metrics import psnr
from scn_deploy.tasks import task_named
from scn_deploy.train.config import TrainConfig
from scn_deploy.train.data import collect_files, given_inputs, load_bank


@dataclass
class ValSample:
    inputs: torch.Tensor  # 1xCxhxw float
    cond: torch.Tensor | None
    target: np.ndarray  # HxWxC uint8


def split_validation(files: list[Path], cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    if cfg.val:
        return files, collect_files(cfg.val)
    if cfg.val_count <= 0:
        return files, []
    return split_held_out(files, seed=cfg.held_out_seed, count=cfg.val_count)


def split_held_out(files: list[Path], *, seed: int, count: int) -> tuple[list[Path], list[Path]]:
    """(train, held out): the `count` validation images that a run with `--seed` holds out.

    Benchmarks that compare models on a run's own held-out images (never a benchmark set) use
    this to find them again."""
    if len(files) <= count:
        raise DataError(f"need more than {count} images to hold some out for validation")
    order = np.random.default_rng(seed).permutation(len(files))
    held = set(order[:count].tolist())
    train = [f for i, f in enumerate(files) if i not in held]
    val = [f for i, f in enumerate(files) if i in held]
    return train, val


def to_float01(image: np.ndarray) -> np.ndarray:
    """A degraded image as float32 in 0-1 units (uint8 images are divided by 255)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    return image.astype(np.float32)


def val_level(cfg: TrainConfig) -> float | None:
    """The level validation runs at (`Task.pick_level`); None for super-resolution."""
    task = task_named(cfg.task)
    if task.level_name is None:
        return None
    return task.pick_level(cfg.fixed_level, cfg.level_range)


def make_val_set(files: list[Path], cfg: TrainConfig, spec: ModelSpec) -> list[ValSample]:
    """Held-out images, centre-cropped to `val_crop`, degraded once with a fixed seed."""
    if not files:
        return []
    bank = load_bank(files, gray=cfg.gray, min_size=16, scale=1)
    task = task_named(cfg.task)
    level = val_level(cfg)
    s = cfg.scale if task.upscales else 1
    given = None
    if cfg.inputs:  # validate on the first given degradation (cropped where the target is)
        bank.hr = [img[: img.shape[0] // s * s, : img.shape[1] // s * s] for img in bank.hr]
        shapes = [(img.shape[0] // s, img.shape[1] // s, img.shape[2]) for img in bank.hr]
        given = given_inputs(cfg.inputs[0], bank.names, shapes, cfg.gray)
    samples = []
    for i, img in enumerate(bank.hr):
        crop = min(cfg.val_crop, *img.shape[:2]) // (8 * s) * (8 * s)
        y0, x0 = (img.shape[0] - crop) // 2 // s * s, (img.shape[1] - crop) // 2 // s * s
        target = np.ascontiguousarray(img[y0 : y0 + crop, x0 : x0 + crop])
        if given is not None:
            lr = given[i][y0 // s : (y0 + crop) // s, x0 // s : (x0 + crop) // s]
            degraded = lr.astype(np.float32) / 255
        else:
            degraded = task.degrade(target, s if task.upscales else level, i)  # type: ignore[arg-type]
            degraded = to_float01(degraded)
        inputs = torch.from_numpy(np.ascontiguousarray(degraded.transpose(2, 0, 1)))[None]
        cond = None
        if spec.conditioned:
            cond = torch.full((1, 1, *inputs.shape[2:]), spec.condition_value(float(level)))
        samples.append(ValSample(inputs, cond, target))
    return samples


def validate(model: SCN, samples: list[ValSample], spec: ModelSpec, device: str) -> float | None:
    if not samples:
        return None
    model.eval()
    crop = spec.task.eval_crop(spec.scale)
    scores = []
    with torch.no_grad():
        for s in samples:
            cond = s.cond.to(device) if s.cond is not None else None
            out = model(s.inputs.to(device), cond).clamp(0, 1)
            restored = (out[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            scores.append(psnr(restored, s.target, crop_border=crop, y_channel=True))
    model.train()
    return float(np.mean(scores))
