"""The `scn` Typer app and what every command shares (consoles, errors, enums).

The command line is a thin layer over the library.

Commands declare options and call one library function each; library code raises
`ScnError` subclasses and only this module turns them into messages and exit codes
(1: a failure with the input/model/data, 2: a usage error).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from scn_deploy import __version__
from scn_deploy.tasks import TASK_NAMES

app = typer.Typer(
    name="scn",
    help="Scale-wise Convolution (SCN) image restoration: super-resolution, denoising, "
    "JPEG deblocking, evaluation, training and export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console()


def choices(name: str, values: Iterable[str]) -> type[StrEnum]:
    """An option's choices as an enum built from the library's list of them (each member's
    name and value are the choice), so the command line never repeats the list."""
    return StrEnum(name, [(value, value) for value in values])  # type: ignore[return-value]


TaskName = choices("TaskName", TASK_NAMES)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def parse_hw(value: str | None, option: str) -> tuple[int, int] | None:
    """An `HxW` option value (e.g. 1080x1920) as (height, width); usage error (exit 2) if bad."""
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise fail(f"{option} must look like 1080x1920, got {value!r}", 2) from None
    if h < 1 or w < 1:
        raise fail(f"{option} must be positive, got {value!r}", 2)
    return h, w


def version_callback(value: bool) -> None:
    if value:
        out.print(f"scn-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """scn: restore images with scale-wise convolutional networks."""
