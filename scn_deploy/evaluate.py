"""Benchmark evaluation: degrade clean images by a published protocol, restore, score.

One :class:`EvalRequest` describes a run (data folders, task and level, a model or a baseline
method, the engine options); :func:`evaluate` returns an :class:`EvalResult` whose
:meth:`EvalResult.to_dict` is the JSON that ``scn eval --json`` prints (``--json-file``:
writes). What differs between the tasks (the reference and degraded input of an image, how
colour is scored, the border crop, the baselines, the level's key) is asked of the request's
:class:`scn_deploy.tasks.Task`; the baselines run from :mod:`scn_deploy.baselines`. The
per-image protocol helpers (:func:`sr_pair`, :func:`denoise_pair`, :func:`deblock_pair`,
:func:`score_uint8`, :func:`score_noisy`) are public so that ``benchmarks/protocol_check.py``
and other tools use exactly the same code.

Protocols (all images 8-bit; an alpha channel is dropped; 16-bit files are rejected):

* **sr** (the "BI" protocol of the SR literature): the HR image is modcropped to the scale,
  the LR is ``imresize(HR, 1/s)`` made from the RGB image (MATLAB bicubic, antialiased,
  :func:`scn_deploy.degrade.bicubic_degrade`). The output is rounded to uint8; PSNR and SSIM
  are measured on the unrounded BT.601 Y channel with ``crop_border = s``, plus PSNR over the
  RGB channels. ``method="bicubic"`` upscales the LR with MATLAB ``imresize(LR, s)``.
* **denoise** (DnCNN / FFDNet / KAIR AWGN protocol): ``noisy = clean / 255 + N(0, sigma/255)``
  drawn with ``np.random.default_rng(seed + i)`` for the i-th image of a folder (sorted by
  name), so a run is deterministic. The noisy image is **not clipped and not quantised**: the
  model sees the raw float image. Gray files (Set12, BSD68) are evaluated in gray, colour files
  (CBSD68) in RGB (a gray model restores them channel by channel). The model output is rounded
  to uint8 and scored with crop 0 on Y (gray: the image itself) and on RGB.
  ``method="bm3d"`` runs BM3D (CBM3D for colour) told the true sigma on the same unclipped
  noisy image and scores its output rounded to uint8 like a model's.
  ``method="identity"`` scores the noisy input itself: its PSNR is computed on the float image
  **without rounding or clipping** (:func:`scn_deploy.metrics.psnr_float`, peak 255), which
  equals ``20 log10(255 / sigma)`` in expectation; its SSIM (defined on 8-bit images) is
  computed on the noisy image rounded and clipped to uint8.
* **deblock** (ARCNN / DnCNN / FBCNN protocol): colour files are converted to Y rounded to uint8
  (gray files are used as they are), that gray image is JPEG-encoded at quality q by OpenCV's
  libjpeg (:func:`scn_deploy.degrade.jpeg_compress`) and decoded; the model restores the gray
  image (an RGB model gets it replicated to three channels, see :class:`Restorer`); PSNR and
  SSIM on that gray image, crop 0. ``method="identity"`` scores the decoded JPEG.
  With ``colour=True`` (``scn eval --colour``; the colour JPEG protocol of FBCNN / QGAC) the RGB
  image itself is JPEG-encoded (4:2:0 chroma, OpenCV's libjpeg) and restored in colour; PSNR /
  SSIM on its Y (unrounded BT.601) plus PSNR over RGB, crop 0. Gray files stay gray.

Dataset numbers are means over the images of the per-image PSNR / SSIM (the usual convention).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scn_deploy.atomic import atomic_write
from scn_deploy.baselines import run_baseline
from scn_deploy.degrade import jpeg_compress
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, DataError
from scn_deploy.imageio import list_images, load_benchmark_image, write_image
from scn_deploy.metrics import psnr, psnr_float, rgb_to_y, ssim, y_uint8
from scn_deploy.tasks import DEBLOCKING, DENOISING, SUPER_RESOLUTION, TASKS, Task

if TYPE_CHECKING:
    from scn_deploy.modelset import ModelSet

__all__ = [
    "DatasetResult",
    "EvalRequest",
    "EvalResult",
    "ImageScore",
    "RequestError",
    "check_model",
    "deblock_pair",
    "denoise_pair",
    "evaluate",
    "evaluate_files",
    "load_benchmark_image",
    "request_level",
    "resolve_data_dir",
    "score_noisy",
    "score_uint8",
    "sr_pair",
    "write_json",
    "y_uint8",
]

ProgressFn = Callable[[str, int, int], None]


class RequestError(ConfigError):
    """The request itself is malformed (what the CLI reports as a usage error, exit 2)."""


# --------------------------------------------------------------------------------------------
# Request and results
# --------------------------------------------------------------------------------------------


@dataclass
class EvalRequest:
    """One evaluation run.

    Attributes:
        data: folders of clean reference images; each folder is one dataset (named after it).
            A bare name that is not an existing folder (e.g. ``"Set5"``) is looked up under
            ``<data root>/benchmarks/*/`` (see :func:`scn_deploy.paths.data_root`).
        task: the task (a name, "sr", "denoise" or "deblock", is looked up).
        level: the degradation level of the task (`Task.level_key`): the SR factor, the
            Gaussian noise sigma in 0-255 units, or the JPEG quality 1-100.
        model: a model file (.safetensors / .onnx) or a zoo name; exclusive with ``method``.
        method: a baseline instead of a model, one of the task's (`Task.baselines`):
            "bicubic" (sr), "identity" (denoise, deblock: the degraded input) or "bm3d"
            (denoise).
        tta: x8 geometric self-ensemble (the paper's "+" results).
        colour: the colour protocol of a task evaluated in Y (`Task.eval_in_y`, deblock:
            encode the RGB image, restore in colour, score Y and RGB).
        jpeg: sr only: the compressed-input protocol: the bicubic LR image is JPEG-coded in
            colour (OpenCV's libjpeg, 4:2:0 chroma) at this quality before it is upscaled.
        deblock: sr with ``jpeg``: what `scn upscale --deblock` does with the JPEG LR before
            a model upscales it: "auto" (the zoo's deblocking model at the JPEG's quality,
            which OpenCV's IJG tables give exactly), "off" or a quality "Q".
        jpeg_model: sr with ``jpeg``: upscale the deblocked JPEG with the zoo's SR model for
            JPEG inputs (`sr-xN-jpeg`) where it serves the quality, as `scn upscale` does with
            the zoo's default model (the given model upscales the other qualities).
        inputs: optional folder of given degraded inputs, matched to the references by file
            stem (``inputs/<dataset>/<stem>.*`` if that subfolder exists, else
            ``inputs/<stem>.*``); replaces the synthetic degradation.
        save_images: optional folder; restored images go to ``<dir>/<dataset>/<stem>.png``.
        seed: base seed of the noise (image i of a folder uses ``seed + i``).
        engine: the engine, device, precision and pyramid scales to run the model with.
    """

    data: Sequence[str | os.PathLike[str]]
    task: Task
    level: float | None = None
    model: str | os.PathLike[str] | None = None
    method: str | None = None
    tta: bool = False
    colour: bool = False
    jpeg: int | None = None
    deblock: str = "auto"
    jpeg_model: bool = False
    inputs: str | os.PathLike[str] | None = None
    save_images: str | os.PathLike[str] | None = None
    seed: int = 0
    engine: EngineOptions = field(default_factory=EngineOptions)

    def __post_init__(self) -> None:
        if isinstance(self.task, str):
            if self.task not in TASKS:
                raise RequestError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
            self.task = TASKS[self.task]

    def validate(self) -> None:
        """Check that the request is complete and consistent; raises :class:`RequestError`."""
        task = self.task
        if not self.data:
            raise RequestError("give at least one data folder (--data DIR)")
        if (self.model is None) == (self.method is None):
            raise RequestError("give either a model (--model) or a baseline method (--method)")
        if self.method is not None and self.method not in task.baselines:
            raise RequestError(
                f"--method {self.method} does not apply to --task {task.name} "
                f"(its baselines: {', '.join(task.baselines)})"
            )
        if self.method is not None and (self.engine.num_scales is not None or self.tta):
            raise RequestError("--scales and --tta apply to a model, not to a --method baseline")
        if self.level is None:
            raise RequestError(f"--task {task.name} needs --{task.level_key}")
        problem = task.level_problem(self.level)
        if problem is not None:
            raise RequestError(problem)
        if self.engine.num_scales is not None and self.engine.num_scales < 1:
            raise RequestError(f"--scales must be >= 1, got {self.engine.num_scales}")
        if self.colour and not task.eval_in_y:
            raise RequestError(
                f"--colour applies to --task {_tasks_where(lambda t: t.eval_in_y)} "
                "(the colour JPEG protocol)"
            )
        if self.jpeg is not None:
            if not task.upscales:
                raise RequestError(
                    f"--jpeg applies to --task {_tasks_where(lambda t: t.upscales)} "
                    "(JPEG-coded LR inputs)"
                )
            if not (isinstance(self.jpeg, int) and 1 <= self.jpeg <= 100):
                raise RequestError(f"--jpeg must be a quality in 1..100, got {self.jpeg}")
            if self.inputs is not None:
                raise RequestError("--jpeg codes the synthetic LR images: not with --inputs")
        from scn_deploy.jpeg_input import DeblockSetting

        try:
            DeblockSetting.parse(self.deblock)
        except ConfigError as exc:
            raise RequestError(str(exc)) from None


def _tasks_where(has: Callable[[Task], bool]) -> str:
    return " / ".join(t.name for t in TASKS.values() if has(t))


def request_level(task: Task, given: Mapping[str, float | None]) -> float | None:
    """The level of a request from options keyed by level key (``{"scale": .., "sigma": ..,
    "quality": ..}``, None: not given): the task's own; raises :class:`RequestError` when
    another task's level is given."""
    for key, value in given.items():
        if key != task.level_key and value is not None:
            raise RequestError(f"--{key} does not apply to --task {task.name}")
    return given.get(task.level_key)


@dataclass
class ImageScore:
    """Scores of one image. ``psnr_rgb`` is PSNR over the image's own channels (gray: the
    gray PSNR); it is None where the protocol has no colour (deblocking)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float | None
    colour: bool


@dataclass
class DatasetResult:
    """Mean scores over one data folder.

    ``psnr_rgb`` is None when no image of the folder is in colour (gray sets, deblocking);
    otherwise the mean of the per-image RGB PSNR (a gray image counts with its gray PSNR, which
    is its RGB PSNR if replicated to three channels). ``seconds`` is the wall time of the whole
    folder: reading, degrading, restoring, scoring (and saving, if asked).
    """

    dataset: str
    images: int
    psnr_y: float
    ssim_y: float
    psnr_rgb: float | None
    seconds: float
    per_image: list[ImageScore] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "images": self.images,
            "psnr_y": self.psnr_y,
            "ssim_y": self.ssim_y,
            "psnr_rgb": self.psnr_rgb,
            "seconds": round(self.seconds, 3),
        }


def _json_number(value: float | int | None) -> float | int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass
class EvalResult:
    """A whole run: what was evaluated and one :class:`DatasetResult` per folder."""

    task: Task
    level: float | int
    model: str | None
    method: str | None
    scales: int | None
    tta: bool
    results: list[DatasetResult]
    colour: bool = False
    engine: str | None = None
    precision: str | None = None
    jpeg: int | None = None
    deblock: str | None = None  # with jpeg and a model: what was done to the JPEG LR
    jpeg_model: str | None = None  # with jpeg: the zoo's SR model for JPEG inputs, if used

    def to_dict(self) -> dict[str, Any]:
        """The ``scn eval --json`` / ``--json-file`` document::

        {"task", "scale" | "sigma" | "quality", "model" | "method", "scales", "tta",
         ["colour": true,] ["jpeg": Q, ["deblock": ...]] ["engine", "precision" (models only),]
         "results": [{"dataset", "images", "psnr_y", "ssim_y", "psnr_rgb", "seconds"}, ...]}

        ``colour`` is present (true) only for the colour JPEG protocol; ``jpeg`` only for SR
        with JPEG-coded LR inputs (``deblock`` then says what a model run did first).
        """
        doc: dict[str, Any] = {
            "task": self.task.name,
            self.task.level_key: _json_number(self.level),
        }
        if self.model is not None:
            doc["model"] = self.model
        else:
            doc["method"] = self.method
        doc["scales"] = self.scales
        doc["tta"] = self.tta
        if self.colour:
            doc["colour"] = True
        if self.jpeg is not None:
            doc["jpeg"] = self.jpeg
            if self.deblock is not None:
                doc["deblock"] = self.deblock
            if self.jpeg_model is not None:
                doc["jpeg_model"] = self.jpeg_model
        if self.engine is not None:
            doc["engine"], doc["precision"] = self.engine, self.precision
        doc["results"] = [r.to_dict() for r in self.results]
        return doc


def write_json(result: EvalResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result.to_dict()`` as indented JSON, atomically (temp file, then rename)."""
    p = Path(path)
    text = json.dumps(result.to_dict(), indent=2) + "\n"
    atomic_write(p, text.encode("utf-8"))
    return p


# --------------------------------------------------------------------------------------------
# Per-image protocol pieces
# --------------------------------------------------------------------------------------------


def sr_pair(img: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR modcropped to ``scale``, bicubic LR made from it): the SR "BI" protocol."""
    return SUPER_RESOLUTION.eval_pair(img, scale)


def denoise_pair(img: np.ndarray, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean uint8, noisy float64 in 0-1 units): ``img / 255 + N(0, sigma / 255)``.

    The noise comes from ``np.random.default_rng(seed)``; the result is not clipped and not
    quantised.
    """
    return DENOISING.eval_pair(img, sigma, seed)


def deblock_pair(
    img: np.ndarray, quality: int, colour: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, its JPEG at ``quality``).

    Default: Y rounded to uint8, encoded as 1 channel. ``colour``: the image as it is (RGB
    encoded with 4:2:0 chroma; a gray file as 1 channel).
    """
    return DEBLOCKING.eval_pair(img, quality, colour=colour)


def score_uint8(
    name: str, out: np.ndarray, ref: np.ndarray, crop: int, colour: bool = True
) -> ImageScore:
    """PSNR / SSIM on Y (gray: the image) with ``crop`` pixels shaved, and PSNR over channels.

    ``out`` and ``ref`` are uint8; ``colour=False`` leaves ``psnr_rgb`` out (None).
    """
    return ImageScore(
        name=name,
        psnr_y=psnr(out, ref, crop_border=crop, y_channel=True),
        ssim_y=ssim(out, ref, crop_border=crop, y_channel=True),
        psnr_rgb=psnr(out, ref, crop_border=crop, y_channel=False) if colour else None,
        colour=ref.ndim == 3,
    )


def score_noisy(name: str, noisy01: np.ndarray, clean: np.ndarray) -> ImageScore:
    """Scores of an unquantised noisy float image (0-1 units) against its clean uint8 image.

    PSNR (Y and RGB) is taken on the float values, not rounded, not clipped (peak 255; the Y
    of colour images is computed from the float RGB). SSIM is defined on 8-bit images: it is
    computed on the noisy image rounded and clipped to uint8 (:func:`scn_deploy.metrics.ssim`).
    """
    noisy255 = np.asarray(noisy01, dtype=np.float64) * 255.0
    if clean.ndim == 3:
        p_y = psnr_float(rgb_to_y(noisy255), rgb_to_y(clean), data_range=255.0)
    else:
        p_y = psnr_float(noisy255, clean, data_range=255.0)
    return ImageScore(
        name=name,
        psnr_y=p_y,
        ssim_y=ssim(noisy255, clean, y_channel=True),
        psnr_rgb=psnr_float(noisy255, clean, data_range=255.0),
        colour=clean.ndim == 3,
    )


# --------------------------------------------------------------------------------------------
# Folders and models
# --------------------------------------------------------------------------------------------


def resolve_data_dir(folder: str | os.PathLike[str]) -> Path:
    """An existing folder as given, or a bare benchmark name found under the data root.

    ``"Set5"`` resolves to ``<data root>/benchmarks/<kind>/Set5`` when there is no folder named
    ``Set5`` here. Raises :class:`DataError` naming the folder when neither exists.
    """
    p = Path(folder)
    if p.exists() or len(p.parts) != 1:
        return p
    from scn_deploy.paths import data_root

    root = data_root()
    if root is not None:
        hits = sorted(d for d in (root / "benchmarks").glob(f"*/{p.name}") if d.is_dir())
        if len(hits) == 1:
            return hits[0]
    return p


def _list_folder(folder: Path) -> list[Path]:
    try:
        return list_images(folder)
    except OSError as exc:
        raise DataError(f"{folder}: cannot read the folder ({exc.strerror or exc})") from exc


def _dataset_names(folders: list[Path]) -> list[str]:
    """Folder names; where two collide, ``parent/name`` (e.g. two ``HR`` folders)."""
    plain = [f.name or f.resolve().name or str(f) for f in folders]
    names = [
        f"{f.resolve().parent.name}/{name}" if plain.count(name) > 1 else name
        for f, name in zip(folders, plain, strict=True)
    ]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise RequestError(f"data folder given twice: {', '.join(dup)}")
    return names


def _stem_map(files: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DataError(
                f"{folder}: two images share the name {f.stem!r} ({stems[f.stem].name}, {f.name})"
            )
        stems[f.stem] = f
    return stems


def _input_map(inputs: Path, dataset: str) -> tuple[Path, dict[str, Path]]:
    sub = inputs / dataset
    folder = sub if sub.is_dir() else inputs
    return folder, _stem_map(_list_folder(folder), folder)


def check_model(spec: Any, request: EvalRequest, source: str = "the model") -> None:
    """Raise :class:`ConfigError` when a model (its ``ModelSpec``) cannot serve the request.

    The task must match; an SR model must have the requested scale; a conditioned model must
    cover the requested level; a non-conditioned denoiser / deblocker trained for a fixed sigma
    / quality must be asked for that level.
    """
    task, level = request.task, request.level
    assert level is not None
    if spec.task != task:
        raise ConfigError(
            f"{source} is a {spec.describe()} model; it cannot be evaluated with --task {task}"
        )
    if task.upscales:
        if spec.scale != level:
            raise ConfigError(
                f"{source} is a x{spec.scale} {task.title} model, but the request is "
                f"--{task.level_key} {level}; use a x{level} model or --{task.level_key} "
                f"{spec.scale}"
            )
        return
    check = task.check_level(spec, float(level), source=source)
    if check.problem is not None:
        raise ConfigError(check.message)


def _load_models(request: EvalRequest) -> ModelSet | None:
    """The request's model set (None for a baseline method): its model, checked against the
    request, and for SR on JPEG inputs the deblocking stage `scn upscale` runs before it."""
    from scn_deploy.modelset import ModelChoice, ModelSet
    from scn_deploy.restorer import RestoreOptions
    from scn_deploy.zoo import jpeg_companion, resolve_model, zoo_deblockers

    if request.model is None:
        return None
    assert request.level is not None
    scale = request.task.scale_of(request.level)
    path = resolve_model(request.model, task=request.task, scale=scale)
    deblockers = zoo_deblockers() if _deblock_quality(request) is not None else (None, None)
    jpeg_model = None
    if request.jpeg_model and request.jpeg is not None:
        jpeg_model = jpeg_companion(scale)
        if jpeg_model is None:
            raise ConfigError(f"--jpeg-model: the zoo has no SR model for JPEG inputs at x{scale}")
    choice = ModelChoice(path, jpeg_model=jpeg_model, deblockers=deblockers)
    models = ModelSet(choice, request.engine, RestoreOptions(tile=0, tta=request.tta))
    check_model(models.primary().engine.spec, request, source=str(request.model))
    return models


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _restore_uint8(restorer: Any, image: np.ndarray, level: float | None) -> np.ndarray:
    from scn_deploy.restorer import to_dtype

    return to_dtype(restorer.restore(image, level), np.uint8)


def _degraded_pair(
    f: Path, index: int, given: Path | None, request: EvalRequest
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, degraded input) of one reference image: the task's protocol, or the given
    degraded file checked against the reference; then JPEG-coded with ``request.jpeg``."""
    task, level = request.task, request.level
    assert level is not None
    image = load_benchmark_image(f)
    if given is None:
        reference, degraded = task.eval_pair(image, level, request.seed + index, request.colour)
    else:
        reference = task.eval_reference(image, level, request.colour)
        try:
            degraded = task.given_input(
                load_benchmark_image(given), reference, level, request.colour
            )
        except ValueError as exc:
            raise DataError(f"{given}: {exc}") from None
    if request.jpeg is not None:
        degraded = jpeg_compress(degraded, request.jpeg)
    return reference, degraded


def _evaluate_image(
    f: Path,
    index: int,
    given: Path | None,
    request: EvalRequest,
    models: ModelSet | None,
) -> tuple[ImageScore, np.ndarray]:
    """Degrade (or read the given input), restore and score one reference image."""
    task, level = request.task, request.level
    assert level is not None
    reference, degraded = _degraded_pair(f, index, given, request)
    if models is None:
        assert request.method is not None
        out = run_baseline(request.method, degraded, level)
    else:
        quality = _deblock_quality(request) if models.can_deblock else None
        restorer, source = models.for_input(degraded, quality)
        if source.dtype != np.uint8:  # an unquantised float input (0-1 units)
            source = source.astype(np.float32)
        out = _restore_uint8(restorer, source, task.model_level(level))
    if out.dtype != np.uint8:  # a baseline's unquantised output: scored on its float values
        score = score_noisy(f.name, out, reference)
        return score, np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    crop = task.eval_crop(task.scale_of(level))
    colour = task.colour_scored(request.colour)
    return score_uint8(f.name, out, reference, crop=crop, colour=colour), out


def _deblock_quality(request: EvalRequest) -> int | None:
    """The quality the chain deblocks a JPEG LR image at (None: not deblocked)."""
    from scn_deploy.jpeg_input import DeblockSetting

    setting = DeblockSetting.parse(request.deblock)
    if setting.mode == "off" or request.jpeg is None:
        return None
    quality = setting.quality if setting.mode == "fixed" else request.jpeg
    return quality if quality is not None and quality < 100 else None


def evaluate_files(
    files: Sequence[Path],
    request: EvalRequest,
    *,
    dataset: str,
    models: ModelSet | None = None,
    inputs: dict[str, Path] | None = None,
    save_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> DatasetResult:
    """Evaluate one dataset given as a list of reference image files.

    ``models`` is the request's `scn_deploy.modelset.ModelSet` (None for ``request.method``);
    ``inputs`` maps file stems to given degraded inputs; ``save_dir`` receives
    ``<stem>.png`` of every restored image. Image i (0-based, in the order given) gets the
    noise seed ``request.seed + i``.
    """
    if not files:
        raise DataError(f"{dataset}: no images to evaluate")
    if models is None and request.method is None:
        raise ConfigError("evaluate_files: a model request needs its models")
    t0 = time.perf_counter()
    scores: list[ImageScore] = []
    for i, f in enumerate(files):
        given = None
        if inputs is not None:
            if f.stem not in inputs:
                raise DataError(f"{f}: no degraded input named {f.stem}.* in --inputs")
            given = inputs[f.stem]
        try:
            score, out = _evaluate_image(f, i, given, request, models)
        except ValueError as exc:  # e.g. an image too small for the scale or the SSIM window
            raise DataError(f"{f}: {exc}") from exc
        scores.append(score)
        if save_dir is not None:
            write_image(save_dir / f"{f.stem}.png", out)
        if progress is not None:
            progress(dataset, i + 1, len(files))
    colour = any(s.colour for s in scores) and request.task.colour_scored(request.colour)
    return DatasetResult(
        dataset=dataset,
        images=len(scores),
        psnr_y=float(np.mean([s.psnr_y for s in scores])),
        ssim_y=float(np.mean([s.ssim_y for s in scores])),
        psnr_rgb=float(np.mean([s.psnr_rgb for s in scores])) if colour else None,  # type: ignore[misc]
        seconds=time.perf_counter() - t0,
        per_image=scores,
    )


def evaluate(request: EvalRequest, progress: ProgressFn | None = None) -> EvalResult:
    """Run a whole request: validate it, load the model once, evaluate every folder.

    Every folder is listed (and the model loaded and checked) before the first image is
    processed, so a missing folder or a mismatched model fails fast. ``progress(dataset, done,
    total)`` is called after each image.
    """
    request.validate()
    folders = [resolve_data_dir(d) for d in request.data]
    names = _dataset_names(folders)
    file_lists = [_list_folder(f) for f in folders]
    if request.save_images is not None or request.inputs is not None:
        for folder, files in zip(folders, file_lists, strict=True):
            _stem_map(files, folder)
    input_maps: list[dict[str, Path] | None] = [None] * len(folders)
    if request.inputs is not None:
        inputs_root = Path(request.inputs)
        if not inputs_root.is_dir():
            raise DataError(f"{inputs_root}: --inputs folder not found")
        input_maps = [_input_map(inputs_root, name)[1] for name in names]
    models = _load_models(request)
    restorer = models.primary() if models is not None else None
    save_root = Path(request.save_images) if request.save_images is not None else None

    results = []
    for name, files, given in zip(names, file_lists, input_maps, strict=True):
        results.append(
            evaluate_files(
                files,
                request,
                dataset=name,
                models=models,
                inputs=given,
                save_dir=save_root / name if save_root is not None else None,
                progress=progress,
            )
        )
    level = request.level
    assert level is not None
    return EvalResult(
        task=request.task,
        level=level,
        model=str(request.model) if request.model is not None else None,
        method=request.method,
        scales=restorer.engine.num_scales if restorer is not None else None,
        tta=request.tta,
        results=results,
        colour=request.colour,
        engine=restorer.engine.name if restorer is not None else None,
        precision=restorer.engine.precision if restorer is not None else None,
        jpeg=request.jpeg,
        deblock=_describe_deblock(request, models) if models is not None else None,
        jpeg_model=_jpeg_model_used(request, models),
    )


def _jpeg_model_used(request: EvalRequest, models: ModelSet | None) -> str | None:
    """The JPEG SR model's name and the qualities it serves, when the run had one."""
    if models is None or request.jpeg is None or models.choice.jpeg_model is None:
        return None
    name = models.choice.jpeg_model.stem
    if models.jpeg_model_for(request.jpeg) is None:
        return f"{name} (not for q{request.jpeg}: {models.choice.model.stem})"
    return name


def _describe_deblock(request: EvalRequest, models: ModelSet) -> str | None:
    if request.jpeg is None:
        return None
    quality = _deblock_quality(request)
    if not models.can_deblock or quality is None:
        return "off"
    return f"{request.deblock} (quality {quality})"
