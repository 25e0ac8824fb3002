"""The final file: the restored segments' video and the input's other streams, by stream copy.

Audio, subtitle, data and attachment streams are copied packet for packet (never
re-encoded); a stream the output container cannot hold is left out with a note naming it.
Container metadata, chapters, stream metadata, dispositions and the display matrix are
kept. Packets are interleaved by time as they are read, so memory stays a few packets. The
file is written under a temporary name and renamed into place (`scn_deploy.atomic`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Iterator
from pathlib import Path

from scn_deploy.atomic import atomic_target
from scn_deploy.errors import ImageReadError
from scn_deploy.video.formats import require_av
from scn_deploy.video.probe import VideoInfo, open_input


def assemble(
    source: Path, info: VideoInfo, segments: list[Path], output: Path, container: str
) -> tuple[int, list[str]]:
    """Write `output`; returns (video frames written, notes about streams left out).

    Raises `ImageReadError` (and leaves no file) when the segments hold another number of
    frames than the input's packets: frames the decoder could not decode (a corrupt file)."""
    av = require_av()
    notes: list[str] = []
    counted = itertools.count()
    frames = 0
    with atomic_target(output) as tmp, open_input(source) as inp:
        first = av.open(str(segments[0]))
        with av.open(str(tmp), mode="w", format=container) as out:
            out.metadata.update(_kept_metadata(inp.metadata))
            template = first.streams.video[0]
            video = out.add_stream_from_template(template)
            _copy_stream_attributes(inp.streams[info.index], video)
            if info.display_matrix is not None:
                video.set_display_matrix(info.display_matrix)
            copied = {}
            for stream in inp.streams:
                if stream.index == info.index:
                    continue
                try:
                    target = out.add_stream_from_template(stream)
                except (ValueError, av.error.FFmpegError, NotImplementedError) as exc:
                    reason = str(exc).split(":")[-1].strip() or type(exc).__name__
                    notes.append(
                        f"stream #{stream.index} ({stream.type} {stream.codec.name}) left out: "
                        f"the {output.suffix[1:]} container cannot hold it ({reason})"
                    )
                    continue
                _copy_stream_attributes(stream, target)
                copied[stream.index] = target
            chapters = inp.chapters()
            if chapters:
                out.set_chapters(chapters)
            first.close()

            def restored() -> Iterator[tuple[float, int, object]]:
                nonlocal frames
                for path in segments:
                    with av.open(str(path)) as part:
                        for packet in part.demux(part.streams.video[0]):
                            if packet.size == 0:
                                continue
                            frames += 1
                            packet.stream = video
                            yield _when(packet), next(counted), packet

            def others() -> Iterator[tuple[float, int, object]]:
                if not copied:
                    return
                wanted = [inp.streams[i] for i in copied]
                for packet in inp.demux(wanted):
                    if packet.size == 0:
                        continue
                    packet.stream = copied[packet.stream.index]
                    yield _when(packet), next(counted), packet

            for _, _, packet in heapq.merge(restored(), others(), key=lambda t: (t[0], t[1])):
                out.mux(packet)
        if frames != info.frames:  # before the rename: no wrong file gets the output's name
            raise ImageReadError(
                f"{source}: corrupt: {frames} frames decoded, the file holds {info.frames}"
            )
    return frames, notes


def _when(packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else float("-inf")


_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration"}


def _kept_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Container tags, less those the muxer writes itself."""
    return {
        k: v
        for k, v in metadata.items()
        if k.lower() not in {"encoder", "major_brand", "minor_version", "compatible_brands"}
    }


def _copy_stream_attributes(source, target) -> None:
    target.metadata.update(_kept_metadata(source.metadata))
    with contextlib.suppress(AttributeError, TypeError, ValueError):
        target.disposition = source.disposition
