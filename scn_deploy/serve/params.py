"""A request's query parameters, checked: the CLI's options with the CLI's ranges.

Every route takes `fast`, `model` (a zoo name only: no path from a request reaches the file
system), `format` and `jpeg_quality`; `upscale` adds `scale` and `deblock`, `denoise` adds
`sigma` and `deblock` adds `quality`. An unknown parameter, a value of the wrong type or one
out of range raises `BadRequest` naming it (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from scn_deploy.errors import ConfigError
from scn_deploy.imageio import OUTPUT_FORMATS
from scn_deploy.jpeg_input import DeblockSetting
from scn_deploy.tasks import TASKS as TASKS_BY_NAME
from scn_deploy.tasks import Task

#: Route name (the task's `scn` command: upscale, denoise, deblock) -> the task it runs.
TASKS: dict[str, Task] = {task.command: task for task in TASKS_BY_NAME.values()}
#: Content types of the output formats.
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff"}
#: A video result keeps its upload's container.
VIDEO_MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".avi": "video/x-msvideo",
}

_COMMON = ("fast", "model", "format", "jpeg_quality")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class BadRequest(Exception):
    """A request the service refuses: `status`, the message sent as JSON, extra headers."""

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class RestorationParams:
    """What one request asks for.

    Attributes:
        task: the task of the route.
        scale: SR factor (1 for the other tasks).
        fast: the fast tier's model.
        model: a zoo model name, or None for the zoo's default for task / scale / tier.
        level: sigma (denoise) or JPEG quality (deblock); None: estimated (deblock) or none.
        deblock: SR: `--deblock` (auto, off or a quality).
        fmt: output format (png, jpg, webp, tiff); jpeg_quality: of jpg / webp outputs.
        container: for a video upload (a job), its container's suffix (".mp4" ...), which
            the result keeps; None for an image.
    """

    task: Task
    scale: int = 1
    fast: bool = False
    model: str | None = None
    level: float | None = None
    deblock: DeblockSetting = field(default_factory=DeblockSetting)
    fmt: str = "png"
    jpeg_quality: int = 95
    container: str | None = None

    @property
    def media_type(self) -> str:
        if self.container is not None:
            return VIDEO_MEDIA_TYPES[self.container]
        return MEDIA_TYPES[self.fmt]

    @property
    def result_name(self) -> str:
        """The file name a result is offered under: "image" (or "video") with the CLI's
        output suffix ("image_x2.png", "image_denoised.png", "video_x2.mp4")."""
        suffix = self.task.output_suffix(self.scale)
        if self.container is not None:
            return f"video{suffix}{self.container}"
        return f"image{suffix}.{self.fmt}"


def own_params(task: Task) -> tuple[str, ...]:
    """The parameters of a task's route beside the common ones: SR's scale and deblock
    setting, else the task's level (sigma, quality)."""
    if task.upscales:
        return ("scale", "deblock")
    return (task.level_name,) if task.level_name else ()


def _flag(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, got {text!r}")


def _number(name: str, text: str, lo: float, hi: float, *, integer: bool) -> float:
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise BadRequest(f"{name} must be {kind}, got {text!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be in {lo:g}..{hi:g}, got {text}")
    return value


def parse_params(
    route: str, query: Mapping[str, str], *, default_fast: bool, zoo_names: list[str]
) -> RestorationParams:
    """Check ``query`` for ``route`` ("upscale", "denoise", "deblock"); raise `BadRequest`."""
    if route not in TASKS:
        raise BadRequest(f"unknown task {route!r} (choose from {', '.join(TASKS)})", 404)
    task = TASKS[route]
    allowed = (*_COMMON, *own_params(task))
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"/{route} (allowed: {', '.join(allowed)})"
        )
    fast = _flag("fast", query["fast"]) if "fast" in query else default_fast
    model = query.get("model")
    if model is not None:
        if model not in zoo_names:
            raise BadRequest(
                f"model must be one of the installed zoo models ({', '.join(zoo_names)}), "
                f"got {model!r}"
            )
        if "fast" in query and fast:
            raise BadRequest("fast picks the zoo's fast model: leave out model (or fast)")
        fast = False
    fmt = query.get("format", "png").lower()
    if fmt not in OUTPUT_FORMATS:
        raise BadRequest(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    jpeg_quality = 95
    if "jpeg_quality" in query:
        jpeg_quality = int(_number("jpeg_quality", query["jpeg_quality"], 1, 100, integer=True))
    scale, level, deblock = 1, None, DeblockSetting()
    if task.upscales:
        scale = int(_number("scale", query.get("scale", "4"), 2, 4, integer=True))
        try:
            deblock = DeblockSetting.parse(query.get("deblock", "auto"))
        except ConfigError as exc:
            raise BadRequest(str(exc).replace("--deblock", "deblock")) from None
    elif task.level_name in query and task.level_bounds is not None:
        lo, hi = task.level_bounds
        level = _number(
            task.level_name, query[task.level_name], lo, hi, integer=task.integer_levels
        )
    return RestorationParams(task, scale, fast, model, level, deblock, fmt, jpeg_quality)
