"""Video files: `scn upscale | denoise | deblock clip.mp4`, decoded and encoded in process
through PyAV (FFmpeg's libraries).

One concern per module: `formats` (extensions, containers, encoder defaults; no PyAV
import), `probe` (what a video holds, its keyframes), `colour` (YUV <-> RGB by the stream's
own matrix and range), `segments` (keyframe-aligned segments and the resume folder),
`encode` (one segment's encoder), `assemble` (the final file by stream copy) and `run`
(the frame pipeline and `restore_video`, the Python API).
"""

from typing import Any

from scn_deploy.video.formats import VIDEO_EXTENSIONS, EncoderOptions, VideoOptions, is_video

__all__ = [
    "VIDEO_EXTENSIONS",
    "EncoderOptions",
    "VideoOptions",
    "VideoResult",
    "is_video",
    "restore_video",
]


def __getattr__(name: str) -> Any:
    """`restore_video` and `VideoResult`, imported on first use (the folder listing that
    imports this package needs neither)."""
    if name in ("restore_video", "VideoResult"):
        from scn_deploy.video import run

        return getattr(run, name)
    raise AttributeError(name)
