"""The options `scn upscale`, `scn denoise` and `scn deblock` share, and the step that runs them.

Each command module declares only its own options and receives the shared ones (`Common`,
declared once here) through `@restoration_command`. It calls `execute`, which checks the
options against the model (usage errors: exit 2), turns them into the library's option
groups (`EngineOptions`, `RestoreOptions`, `FileOptions`, cluster) and runs
`scn_deploy.pipeline.run`; `cli/progress.py` shows its progress and summary. Exit code 1 when
any file failed. The choices of --engine, --precision and --format are the library's lists
(`engines.registry.ENGINE_NAMES` / `PRECISIONS`, `imageio.OUTPUT_FORMATS`).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from rich.markup import escape

from scn_deploy.arch.config import ModelSpec
from scn_deploy.cli.app import choices, err, fail
from scn_deploy.cli.progress import RichReporter, report_summary
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import ENGINE_NAMES, PRECISIONS
from scn_deploy.errors import ConfigError, ScnError
from scn_deploy.files import FileOptions
from scn_deploy.imageio import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS
from scn_deploy.modelset import spec_of
from scn_deploy.pipeline import ClusterExecutor, RunRequest
from scn_deploy.restorer import RestoreOptions
from scn_deploy.video.formats import EncoderOptions, VideoOptions

Engine = choices("Engine", ENGINE_NAMES)
Precision = choices("Precision", ("auto", *PRECISIONS))
Format = choices("Format", OUTPUT_FORMATS)


Inputs = Annotated[
    list[Path],
    typer.Argument(
        help="Image and video files and/or folders (folders: every image and video inside; "
        "videos: mp4, m4v, mov, mkv, webm, avi).",
        metavar="INPUT",
        show_default=False,
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Output folder (sub-folders mirrored with --recursive), or an output file name "
        "for a single input (a video's suffix picks its container: -o out.mkv). Default: "
        "beside each input; videos keep their container.",
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        help="Model: a zoo name (see `scn models`) or a file (.safetensors, or an exported "
        ".onnx). Default: the zoo model for the task; for denoise / deblock the colour model "
        "restores colour images and the gray one (e.g. denoise-gray) gray images."
    ),
]
Tile = Annotated[
    str,
    typer.Option(
        help="Tile size in input pixels: 'auto' (the largest tile whose forward pass fits "
        "the memory budget; the whole image when it fits), 0 (whole image) or N."
    ),
]
TileOverlap = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Context pixels around each tile. Default: the model's receptive field, measured "
        "(one input pixel's reach at 1e-3 grey level) plus 2.",
    ),
]
TileMemory = Annotated[
    int | None,
    typer.Option(
        min=16,
        help="Memory budget of one forward pass in MiB for --tile auto (default: 1024 on "
        "CPU, half the free GPU memory on CUDA).",
    ),
]
Batch = Annotated[int, typer.Option(min=1, help="Tiles per forward pass.")]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="Inference backend. auto: the fastest installed one for the device (CUDA: "
        "tensorrt > onnx > torch; CPU: openvino > onnx > torch; a model file without an ONNX "
        "export runs on torch when it is installed); or torch, onnx, openvino, tensorrt.",
    ),
]
Device = Annotated[
    str, typer.Option(help="auto (CUDA when a GPU and a CUDA engine are there), cpu, cuda, cuda:N.")
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help="auto: bf16 with openvino on a CPU with native bf16 (AVX512-BF16 / AMX) when the "
        "model card measures <= 0.02 dB lost, else fp32. fp16 (CUDA, or an fp16 ONNX), bf16 "
        "(openvino on native-bf16 CPUs, torch), int8 (the export made by `scn export --int8`).",
    ),
]
Fp16 = Annotated[bool, typer.Option("--fp16", help="Half precision (CUDA only): --precision fp16.")]
Scales = Annotated[
    int | None,
    typer.Option(
        "--scales",
        min=1,
        max=12,
        help="Pyramid scales at inference (default: as trained). More scales see farther.",
    ),
]
Tta = Annotated[
    bool, typer.Option("--tta", help="x8 self-ensemble (flips/rotations averaged; 8x slower).")
]
Recursive = Annotated[
    bool,
    typer.Option("--recursive", "-r", help="Include sub-folders of folder inputs."),
]
Suffix = Annotated[
    str | None,
    typer.Option(help="Added to output names (default: _x4 / _denoised / _deblocked)."),
]
FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format", help="Output format (default: png, or the extension of an -o file name)."
    ),
]
JpegQuality = Annotated[
    int, typer.Option(min=1, max=100, help="Quality of jpg and webp outputs (1-100).")
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace existing outputs (default: skip and report them)."),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Show what would be written (reads headers only); write nothing."
    ),
]
AsJson = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print one JSON summary line on stdout (processed, skipped, failed, outputs, "
        "seconds, engine, model); logs stay on stderr.",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or per-file lines; errors only.")
]
RestorationFast = Annotated[
    bool,
    typer.Option(
        "--fast",
        help="Use the fast tier's model: the default model's body at half resolution "
        "(denoise-fast / deblock-fast, their -gray-fast variants for gray images; about 1/4 of "
        "the compute, see `scn models`). Not with --model.",
    ),
]
MaxPixels = Annotated[
    int,
    typer.Option(
        min=0,
        help="Refuse images and video frames whose header declares more pixels (checked "
        "before decoding; 0 = no limit).",
    ),
]
VideoCodec = Annotated[
    str | None,
    typer.Option(
        "--codec",
        help="Video encoder: libx264, libx265, libvpx-vp9, libsvtav1, ffv1, ... Default: "
        "libx264 for 8-bit input (libvpx-vp9 in .webm), libx265 for 10-bit and deeper "
        "(libsvtav1 in .webm).",
    ),
]
VideoCrf = Annotated[
    float | None,
    typer.Option(
        "--crf",
        min=0,
        help="Video constant rate factor, lower is better and larger. Default: 18 for x264, "
        "20 for x265, 24 for VP9, 26 for SVT-AV1.",
    ),
]
VideoPreset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Video encoder speed preset (x264/x265: ultrafast ... veryslow; SVT-AV1: 0-13; "
        "VP9: cpu-used 0-8). Default: fast for x264/x265, 8 for SVT-AV1.",
    ),
]
VideoPixFmt = Annotated[
    str | None,
    typer.Option(
        "--pix-fmt",
        help="Video output pixel format. Default: yuv420p for 8-bit input, yuv420p10le for "
        "10-bit and deeper (4:2:0 needs even sizes; yuv444p takes any).",
    ),
]
SegmentSeconds = Annotated[
    float,
    typer.Option(
        "--segment-seconds",
        min=0,
        help="Videos are restored in segments starting on keyframes at least this far apart; "
        "rerunning an interrupted command resumes after the last finished segment.",
    ),
]


class Cluster(StrEnum):
    local = "local"
    ray = "ray"


ClusterOpt = Annotated[
    Cluster,
    typer.Option(
        "--cluster",
        help="local (this process) or ray: an actor pool of engines on Ray Data "
        "(pip install 'scn-deploy[ray]'; paths must be reachable from every node).",
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster address for --cluster ray ('auto', 'ray://host:10001'); default: "
        "a local Ray instance for this run."
    ),
]
NumGpus = Annotated[
    float, typer.Option(min=0, help="GPUs to use in all with --cluster ray (one per actor).")
]
Actors = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Engines running at once with --cluster ray (default: one per GPU, else one "
        "per 2 CPUs).",
    ),
]


@dataclass
class Common:
    """The options every restoration command has, declared once: `restoration_command` adds
    them to the command's own parameters, and the command receives them as one `Common`."""

    inputs: Inputs
    out: Out = None
    model: Model = None
    tile: Tile = "auto"
    tile_overlap: TileOverlap = None
    tile_memory: TileMemory = None
    batch: Batch = 1
    engine: EngineOpt = Engine.auto
    device: Device = "auto"
    fp16: Fp16 = False
    precision: PrecisionOpt = Precision.auto
    scales: Scales = None
    tta: Tta = False
    recursive: Recursive = False
    suffix: Suffix = None
    fmt: FormatOpt = None
    jpeg_quality: JpegQuality = 95
    overwrite: Overwrite = False
    dry_run: DryRun = False
    as_json: AsJson = False
    quiet: Quiet = False
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS
    codec: VideoCodec = None
    crf: VideoCrf = None
    preset: VideoPreset = None
    pix_fmt: VideoPixFmt = None
    segment_seconds: SegmentSeconds = 10.0
    cluster: ClusterOpt = Cluster.local
    address: Address = None
    num_gpus: NumGpus = 0.0
    actors: Actors = None

    def engine_options(self) -> EngineOptions:
        tile = parse_tile(self.tile)
        return EngineOptions(
            engine=self.engine.value,
            device=self.device,
            precision=precision_of(self.precision, self.fp16),
            num_scales=self.scales,
            tile=tile if isinstance(tile, int) and tile > 0 else None,
            batch=self.batch,
        )

    def restore_options(self) -> RestoreOptions:
        return RestoreOptions(
            tile=parse_tile(self.tile),
            tile_overlap=self.tile_overlap,
            batch=self.batch,
            tta=self.tta,
            memory_budget=self.tile_memory << 20 if self.tile_memory else None,
            extrapolate_level=True,
        )

    def file_options(self) -> FileOptions:
        return FileOptions(
            out=self.out,
            recursive=self.recursive,
            max_pixels=self.max_pixels or None,
            fmt=self.fmt.value if self.fmt else None,
            suffix=self.suffix,
            jpeg_quality=self.jpeg_quality,
            overwrite=self.overwrite,
            dry_run=self.dry_run,
        )

    def video_options(self) -> VideoOptions:
        encoder = EncoderOptions(self.codec, self.crf, self.preset, self.pix_fmt)
        return VideoOptions(encoder=encoder, segment_seconds=self.segment_seconds)

    def cluster_options(self) -> ClusterExecutor | None:
        if self.cluster == Cluster.local:
            if self.address or self.num_gpus or self.actors:
                raise fail("--address, --num-gpus and --actors need --cluster ray", 2)
            return None
        from scn_deploy.cluster import ClusterOptions

        return ClusterOptions(address=self.address, actors=self.actors, num_gpus=self.num_gpus)


def restoration_command(command: Callable[..., None]) -> Callable[..., None]:
    """`command(common: Common, **own)` as a Typer command whose parameters are INPUT, the
    command's own options, then `Common`'s options: one declaration for upscale, denoise and
    deblock."""
    own_hints = get_type_hints(command, include_extras=True)
    common_hints = get_type_hints(Common, include_extras=True)
    keyword = inspect.Parameter.KEYWORD_ONLY

    def parameter(name: str, annotation: object, default: object) -> inspect.Parameter:
        return inspect.Parameter(name, keyword, annotation=annotation, default=default)

    own = [
        parameter(p.name, own_hints[p.name], p.default)
        for p in inspect.signature(command).parameters.values()
        if p.name != "common"
    ]
    shared = [
        parameter(
            f.name,
            common_hints[f.name],
            inspect.Parameter.empty if f.default is MISSING else f.default,
        )
        for f in fields(Common)
    ]
    names = {f.name for f in fields(Common)}

    @functools.wraps(command)
    def wrapper(**values: Any) -> None:
        common = Common(**{name: values.pop(name) for name in names})
        command(common=common, **values)

    parameters = [shared[0], *own, *shared[1:]]  # INPUT first
    del wrapper.__wrapped__  # Typer reads the signature below, not the wrapped function's
    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def parse_tile(value: str) -> int | str:
    """--tile's value: "auto" or a size >= 0 (usage error, exit 2, otherwise)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        raise fail(f"--tile must be 'auto' or a number of pixels, got {value!r}", 2) from None
    if tile < 0:
        raise fail(f"--tile must be >= 0, got {tile}", 2)
    return tile


def check_device(device: str) -> None:
    """--device must be auto, cpu, cuda or cuda:N (usage error, exit 2, otherwise)."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise fail(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}", 2)


def precision_of(precision: Precision, fp16: bool) -> str | None:
    """--precision and --fp16 as one precision (None: auto)."""
    if fp16 and precision not in (Precision.auto, Precision.fp16):
        raise fail(f"--fp16 contradicts --precision {precision.value}", 2)
    if fp16:
        return "fp16"
    return None if precision == Precision.auto else precision.value


def load_spec(
    model: str | None, task: str, scale: int, *, quiet: bool = False, fast: bool = False
) -> tuple[Path, ModelSpec]:
    """Resolve --model (or the zoo default, or with ``fast`` the fast tier's model) and read
    what the model is (`scn_deploy.zoo.resolve_task_model`); exit on errors."""
    from scn_deploy.zoo import resolve_task_model

    try:
        path, spec = resolve_task_model(model, task=task, scale=scale, fast=fast)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ScnError as exc:
        raise fail(str(exc)) from None
    if model is None and spec.channels == 1 and not quiet:
        err.print(
            f"note: using the gray model {path.stem} (no colour {task} model is installed): "
            "colour images are restored channel by channel",
            markup=False,
        )
    return path, spec


def check_level(spec: ModelSpec, level: float | None) -> float | None:
    """Check --sigma / --quality against the model (`Task.check_level`); returns the level to
    condition on (None for deblocking without --quality: estimated per JPEG)."""
    check = spec.task.check_level(spec, level)
    if check.problem == "fixed":
        raise fail(check.message, 2)
    if check.problem == "missing":
        if spec.task.level_from_file:
            return None
        raise fail(check.message, 2)
    if check.problem == "outside":
        err.print(f"[yellow]warning:[/] {escape(check.message)}; the model extrapolates")
    return check.level


def execute(
    common: Common,
    *,
    task: str,
    model_path: Path,
    level: float | None = None,
    outscale: float | None = None,
    deblock: str = "auto",
    fast: bool = False,
) -> None:
    """Run the pipeline for a checked command line; exits with 0, 1 (a file failed), 2
    (usage), 130 (Ctrl-C)."""
    from scn_deploy.pipeline import run

    check_device(common.device)
    if not common.inputs:
        raise fail("give at least one INPUT file or folder", 2)
    from scn_deploy.zoo import choose_models

    # The zoo's companions (gray model, JPEG stages) serve beside its default models.
    models = choose_models(common.model, task=task, scale=spec_of(model_path).scale, fast=fast)
    request = RunRequest(
        task=task,
        inputs=common.inputs,
        models=replace(models, model=model_path),
        level=level,
        outscale=outscale,
        deblock=deblock,
        engine=common.engine_options(),
        restore=common.restore_options(),
        files=common.file_options(),
        cluster=common.cluster_options(),
        video=common.video_options(),
    )
    try:
        with RichReporter(common.quiet) as reporter:
            summary = run(request, reporter)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ScnError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print(
            "interrupted: files written so far are complete; no partial outputs are left "
            "(rerun the same command to resume an interrupted video)"
        )
        raise typer.Exit(130) from None
    report_summary(summary, as_json=common.as_json, quiet=common.quiet)
    if summary.failed:
        raise typer.Exit(1)
