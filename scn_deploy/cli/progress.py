"""What a restoration run shows while it runs and when it ends: progress bars and per-file
lines (`RichReporter`, the pipeline's `Reporter` on stderr) and the closing summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from scn_deploy.cli.app import err
from scn_deploy.files import Job
from scn_deploy.pipeline import Reporter, RunSummary


class RichReporter(Reporter):
    """Progress bars (overall and per file) and per-file lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=quiet or not err.is_terminal,
            transient=True,
        )
        self.overall: TaskID | None = None
        self.current: TaskID | None = None
        self._label = ""

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def start(self, total: int) -> None:
        self.overall = self.progress.add_task("[bold]files", total=total)

    def file_started(self, job: Job, width: int, height: int, plan: str) -> None:
        name = job.source.path.name
        label = f"{name} ({width}x{height}, {plan})"
        if self.current is None:
            self.current = self.progress.add_task(label, total=None)
        else:
            self.progress.reset(self.current, description=label, total=None)

    def tiles(self, done: int, total: int) -> None:
        if self.current is not None:
            self.progress.update(self.current, completed=done, total=total)

    def video_started(self, job: Job, description: str, plan: str) -> None:
        self.file_started(job, 0, 0, plan)
        self._label = f"{job.source.path.name} ({description}, {plan})"
        if self.current is not None:
            self.progress.update(self.current, description=self._label)

    def frames(self, done: int, total: int, fps: float) -> None:
        if self.current is None:
            return
        left = max(total - done, 0) / fps if fps > 0 else 0.0
        eta = f"{int(left // 60)}:{int(left % 60):02d}"
        label = f"{self._label}  {fps:.1f} fps, ETA {eta}"
        self.progress.update(self.current, completed=done, total=total, description=label)

    def file_done(self, job: Job, seconds: float) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)
        if not self.quiet:
            self._print(f"[green]wrote[/] {escape(str(job.output))}  [dim]({seconds:.1f} s)[/]")

    def skipped(self, path: Path, output: Path | None, reason: str) -> None:
        if not self.quiet:
            target = f" -> {output}" if output else ""
            self._print(f"[yellow]skipped[/] {escape(f'{path}{target}: {reason}')}")

    def failed(self, path: Path, error: str) -> None:
        if self.overall is not None:
            self.progress.advance(self.overall)
        self._print(f"[bold red]error:[/] {escape(error)}")

    def note(self, path: Path, message: str) -> None:
        if not self.quiet:
            self._print(f"[cyan]note[/] {escape(f'{path}: {message}')}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self._print(escape(message))


def report_summary(summary: RunSummary, *, as_json: bool, quiet: bool) -> None:
    """The run's summary: one JSON line on stdout with ``as_json``, and a line on stderr
    (errors only with ``quiet``)."""
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json()) + "\n")
        sys.stdout.flush()
    if quiet and not summary.failed:
        return
    verb = "would write" if summary.dry_run else "wrote"
    n_out = len(summary.outputs)
    parts = [f"{verb} {n_out} file{'s' if n_out != 1 else ''}"]
    if summary.skipped:
        parts.append(f"skipped {len(summary.skipped)}")
    if summary.failed:
        parts.append(f"[bold red]failed {len(summary.failed)}[/]")
    engine = ""
    if summary.engine:
        tier = " (fast tier)" if summary.tier == "fast" else ""
        engine = escape(
            f" with {Path(summary.model).stem}{tier} on {summary.engine} ({summary.precision}, "
            f"{summary.device})"
        )
    err.print(f"{', '.join(parts)} in {summary.seconds:.1f} s{engine}", highlight=False)
