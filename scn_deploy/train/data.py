"""Training data: decoded images in memory, and batches that are a pure function of the step.

Batch t is drawn with `np.random.default_rng([seed, t])`, so a resumed run sees exactly the
batches an uninterrupted one would, whatever the number of loader workers.

Degradations are made per sample: Gaussian noise is fresh for every sample (its own sigma when
a range is given), JPEG is encoded per patch at the chosen or a random quality. The bicubic LR
of each training image is computed once from the whole image (MATLAB imresize, as in the
benchmarks) and patches are cut at aligned positions: bicubic is deterministic, so this equals
degrading online but avoids border effects of resizing small patches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.degrade import bicubic_degrade
from scn_deploy.dihedral import dihedral
from scn_deploy.errors import DataError, ImageReadError
from scn_deploy.imageio import list_images, read_image
from scn_deploy.tasks import task_named

log = logging.getLogger(__name__)


def to_channels(img: np.ndarray, gray: bool) -> np.ndarray:
    """uint8 image as HxWx1 (gray) or HxWx3 (RGB); 16-bit is reduced to 8-bit, alpha dropped."""
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if gray:
        if img.ndim == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        return img[..., None]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img


@dataclass
class ImageBank:
    """Decoded training images (uint8 HxWxC) and, for SR, their bicubic LR counterparts."""

    hr: list[np.ndarray]
    lr: list[np.ndarray] | None
    names: list[str]
    skipped: list[tuple[str, str]]
    #: SR only: per `--inputs` folder, each image's given degraded LR (same size as `lr`)
    given: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        given = sum(a.nbytes for folder in self.given for a in folder)
        return sum(a.nbytes for a in self.hr) + sum(a.nbytes for a in self.lr or []) + given


def collect_files(folders: list[str]) -> list[Path]:
    if not folders:
        raise DataError("no training data: give at least one --data DIR")
    files: list[Path] = []
    for folder in folders:
        files.extend(list_images(folder, recursive=True))
    return files


def load_bank(files: list[Path], *, gray: bool, min_size: int, scale: int = 1) -> ImageBank:
    """Decode `files` once; unreadable or too-small images are skipped with a warning."""
    hr, lr, names, skipped = [], [], [], []
    for path in files:
        try:
            img = to_channels(read_image(path), gray)
        except ImageReadError as exc:
            skipped.append((str(path), f"unreadable: {exc}"))
            continue
        h, w = img.shape[:2]
        if min(h, w) < min_size:
            skipped.append((str(path), f"{w}x{h} is smaller than the {min_size}px patch"))
            continue
        if scale > 1:
            img = img[: h - h % scale, : w - w % scale]
            lr.append(np.ascontiguousarray(bicubic_degrade(img, scale)))
        hr.append(np.ascontiguousarray(img))
        names.append(str(path))
    for path, why in skipped:
        log.warning("skipping %s: %s", path, why)
    if not hr:
        detail = "; ".join(f"{p}: {w}" for p, w in skipped[:5])
        raise DataError(f"no usable training images ({len(skipped)} skipped: {detail})")
    return ImageBank(hr, lr if scale > 1 else None, names, skipped)


def given_inputs(folder: str | Path, names: list[str], shapes: list[tuple[int, ...]], gray: bool):
    """The given degraded LR image of each training image, from `folder`: the file with the
    same stem (any readable type), the size of that image's bicubic LR. Raises DataError
    naming what is missing, ambiguous or of the wrong size."""
    by_stem: dict[str, Path] = {}
    for path in list_images(folder, recursive=True):
        if path.stem in by_stem:
            raise DataError(
                f"{folder}: two inputs named {path.stem} ({by_stem[path.stem]}, {path})"
            )
        by_stem[path.stem] = path
    found = []
    for name, shape in zip(names, shapes, strict=True):
        stem = Path(name).stem
        if stem not in by_stem:
            raise DataError(f"{folder}: no input named {stem}.* for the training image {name}")
        try:
            img = to_channels(read_image(by_stem[stem]), gray)
        except ImageReadError as exc:
            raise DataError(f"{by_stem[stem]}: unreadable: {exc}") from exc
        if img.shape != shape:
            raise DataError(
                f"{by_stem[stem]}: {img.shape[1]}x{img.shape[0]}, but the bicubic LR of {name} "
                f"is {shape[1]}x{shape[0]}"
            )
        found.append(np.ascontiguousarray(img))
    return found


@dataclass
class Batch:
    """A training batch in NCHW float32 [0, 1]; `cond` is the conditioning map or None."""

    inputs: np.ndarray
    targets: np.ndarray
    cond: np.ndarray | None


class BatchMaker:
    """Makes batch t from (seed, t) alone: random image, crop, dihedral transform, degradation."""

    def __init__(
        self,
        bank: ImageBank,
        *,
        task: str,
        scale: int,
        patch: int,
        batch: int,
        seed: int,
        sigma: float | None = None,
        sigma_range: tuple[float, float] | None = None,
        quality: int | None = None,
        quality_range: tuple[int, int] | None = None,
        condition=None,
        rank: int = 0,
    ) -> None:
        self.bank = bank
        self.task = task
        self.scale = scale
        self.patch = patch
        self.batch = batch
        self.seed = seed
        self.sigma, self.sigma_range = sigma, sigma_range
        self.quality, self.quality_range = quality, quality_range
        self.condition = condition  # level -> map value, for conditioned models
        self.rank = rank  # distributed rank: each rank draws its own batches

    def _level(self, rng: np.random.Generator) -> float:
        task = task_named(self.task)
        level_range = self.sigma_range if task.level_name == "sigma" else self.quality_range
        if level_range is not None:
            return task.draw_level(rng, level_range)
        fixed = self.sigma if task.level_name == "sigma" else self.quality
        assert fixed is not None
        return float(fixed)

    def __call__(self, step: int) -> Batch:
        key = [self.seed, step] if self.rank == 0 else [self.seed, step, self.rank]
        rng = np.random.default_rng(key)
        p, s = self.patch, self.scale
        n = len(self.bank.hr)
        c = self.bank.hr[0].shape[2]
        out_p = p * s
        inputs = np.empty((self.batch, c, p, p), np.float32)
        targets = np.empty((self.batch, c, out_p, out_p), np.float32)
        cond = None
        if self.condition is not None:
            cond = np.empty((self.batch, 1, p, p), np.float32)
        task = task_named(self.task)
        for b in range(self.batch):
            i = int(rng.integers(n))
            k = int(rng.integers(8))
            if task.upscales:
                assert self.bank.lr is not None
                lr_img = self.bank.lr[i]
                if self.bank.given:  # one of the given degradations, drawn per sample
                    lr_img = self.bank.given[int(rng.integers(len(self.bank.given)))][i]
                y = int(rng.integers(lr_img.shape[0] - p + 1))
                x = int(rng.integers(lr_img.shape[1] - p + 1))
                lr_patch = dihedral(lr_img[y : y + p, x : x + p], k & 3, bool(k & 4), (0, 1))
                hr_patch = dihedral(
                    self.bank.hr[i][y * s : (y + p) * s, x * s : (x + p) * s],
                    k & 3,
                    bool(k & 4),
                    (0, 1),
                )
                inputs[b] = lr_patch.transpose(2, 0, 1) / np.float32(255)
                targets[b] = hr_patch.transpose(2, 0, 1) / np.float32(255)
                continue
            img = self.bank.hr[i]
            y = int(rng.integers(img.shape[0] - p + 1))
            x = int(rng.integers(img.shape[1] - p + 1))
            clean = np.ascontiguousarray(
                dihedral(img[y : y + p, x : x + p], k & 3, bool(k & 4), (0, 1))
            )
            level = self._level(rng)
            targets[b] = clean.transpose(2, 0, 1) / np.float32(255)
            degraded = task.degrade(clean, level, rng)
            scale01 = 1 / 255 if degraded.dtype == np.uint8 else 1.0
            inputs[b] = degraded.transpose(2, 0, 1) * np.float32(scale01)
            if cond is not None:
                cond[b] = self.condition(level)
        return Batch(inputs, targets, cond)


class StepDataset:
    """Map-style dataset whose item t is batch t (for torch DataLoader workers)."""

    def __init__(self, maker: BatchMaker, start: int, stop: int) -> None:
        self.maker, self.start, self.stop = maker, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        batch = self.maker(self.start + index)
        return batch.inputs, batch.targets, batch.cond
