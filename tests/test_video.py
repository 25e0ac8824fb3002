"""Video files end to end: timestamps, streams, colour, bit depth, errors and resume.

Every clip is made here with PyAV (tiny sizes, the fast models on ONNX Runtime, no torch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from scn_deploy.engines.options import EngineOptions  # noqa: E402
from scn_deploy.errors import ConfigError, ImageReadError  # noqa: E402
from scn_deploy.modelset import ModelSet  # noqa: E402
from scn_deploy.restorer import RestoreOptions  # noqa: E402
from scn_deploy.video.formats import EncoderOptions, VideoOptions  # noqa: E402
from scn_deploy.video.run import VideoProgress, restore_video  # noqa: E402
from scn_deploy.video.segments import work_folder_for  # noqa: E402
from scn_deploy.zoo import choose_models  # noqa: E402
from tests.video_clips import (  # noqa: E402
    BT470BG,
    BT709,
    BT2020,
    FULL,
    LIMITED,
    PQ,
    Clip,
    decoded_rgb,
    make_clip,
    packets_of,
    patch_means,
    video_pts,
)

ONNX = EngineOptions(engine="onnx")
EVERY_KEYFRAME = VideoOptions(segment_seconds=0)


@pytest.fixture(scope="module")
def sr_models() -> ModelSet:
    """sr-x2-fast on ONNX Runtime, loaded once for the module."""
    return ModelSet(choose_models("sr-x2-fast", task="sr", scale=2), ONNX, RestoreOptions("auto"))


@pytest.fixture(scope="module")
def denoise_models() -> ModelSet:
    choice = choose_models("denoise-fast", task="denoise", scale=1)
    return ModelSet(choice, ONNX, RestoreOptions("auto", extrapolate_level=True))


def _streams(path: Path) -> list[tuple[str, str]]:
    with av.open(str(path)) as c:
        return [(s.type, s.codec_context.name if s.codec_context else "") for s in c.streams]


@pytest.mark.parametrize("durations", [(40,), (30, 50, 80, 20)], ids=["cfr", "vfr"])
def test_timestamps_frames_and_audio_are_kept(tmp_path, sr_models, durations):
    source = make_clip(tmp_path / "in.mp4", Clip(durations_ms=durations, audio=True))
    out = tmp_path / "out.mp4"
    result = restore_video(source, out, sr_models, video=EVERY_KEYFRAME)
    assert result.frames == 12 and result.segments == 3 and result.restored_frames == 12
    assert video_pts(out) == video_pts(source)
    assert packets_of(out, "audio") == packets_of(source, "audio")  # byte-identical
    with av.open(str(out)) as o, av.open(str(source)) as i:
        assert (o.streams.video[0].width, o.streams.video[0].height) == (128, 96)
        assert o.streams.video[0].frames == i.streams.video[0].frames == 12
        assert o.duration == i.duration
        last_in, last_out = list(i.decode(video=0))[-1], list(o.decode(video=0))[-1]
        assert last_out.pts + last_out.duration == last_in.pts + last_in.duration
    assert not work_folder_for(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


@pytest.mark.parametrize("matrix", [BT470BG, BT709], ids=["bt601", "bt709"])
@pytest.mark.parametrize("colour_range", [LIMITED, FULL], ids=["limited", "full"])
def test_colour_patches_keep_their_colour(tmp_path, sr_models, matrix, colour_range):
    clip = Clip(width=96, height=64, frames=2, matrix=matrix, range=colour_range, patches=True)
    source = make_clip(tmp_path / "in.mkv", clip)
    out = tmp_path / "out.mkv"
    restore_video(source, out, sr_models)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert frame.format.name in ("yuv420p", "yuvj420p")  # the decoder names full range j
        assert (int(frame.colorspace), int(frame.color_range)) == (matrix, colour_range)
    before = patch_means(decoded_rgb(source)[0])
    after = patch_means(decoded_rgb(out)[0])
    assert np.abs(after - before).max() <= 2.0, (before, after)


def test_ten_bit_stays_ten_bit_with_hdr_tags(tmp_path, sr_models):
    clip = Clip(
        frames=4,
        pix_fmt="yuv420p10le",
        matrix=BT2020,
        primaries=BT2020,
        transfer=PQ,
        patches=True,
        width=96,
        height=64,
    )
    source = make_clip(tmp_path / "in.mkv", clip)
    out = tmp_path / "out.mkv"
    result = restore_video(source, out, sr_models)
    assert result.encoder.startswith("libx265, yuv420p10le")
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "hevc"
        frame = next(c.decode(video=0))
        assert frame.format.name == "yuv420p10le"
        assert (int(frame.color_primaries), int(frame.color_trc)) == (BT2020, PQ)
        assert int(frame.colorspace) == BT2020
    before = patch_means(decoded_rgb(source, deep=True)[0]) / 257
    after = patch_means(decoded_rgb(out, deep=True)[0]) / 257
    assert np.abs(after - before).max() <= 2.0


def test_subtitles_are_copied_and_rotation_kept(tmp_path, sr_models):
    clip = Clip(frames=6, audio=True, subtitles="subrip", rotation=90, container="matroska")
    source = make_clip(tmp_path / "in.mkv", clip)
    out = tmp_path / "out.mkv"
    restore_video(source, out, sr_models)
    assert [kind for kind, _ in _streams(out)] == ["video", "audio", "subtitle"]
    assert _streams(out)[1:] == _streams(source)[1:]
    assert packets_of(out, "subtitle") == packets_of(source, "subtitle")
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 90


def test_metadata_and_chapters_are_kept(tmp_path, sr_models):
    clip = Clip(frames=6, audio=True, tagged=True, container="matroska")
    source = make_clip(tmp_path / "in.mkv", clip)
    out = tmp_path / "out.mkv"
    restore_video(source, out, sr_models)
    with av.open(str(source)) as i, av.open(str(out)) as o:
        assert o.metadata["title"] == i.metadata["title"] == "test clip"
        assert o.streams.audio[0].metadata["language"] == "fra"
        chapters = [(c["start"], c["end"], c["metadata"]) for c in o.chapters()]
        assert chapters == [(c["start"], c["end"], c["metadata"]) for c in i.chapters()]
        assert [c["metadata"]["title"] for c in o.chapters()] == ["one", "two"]


def test_a_stream_the_output_container_cannot_hold_is_left_out_with_a_note(tmp_path, sr_models):
    source = make_clip(tmp_path / "in.mp4", Clip(frames=4, subtitles="mov_text", audio=True))
    out = tmp_path / "out.mkv"  # Matroska has no mov_text
    result = restore_video(source, out, sr_models)
    assert _streams(out) == [("video", "h264"), ("audio", "aac")]
    assert any("stream #2 (subtitle mov_text) left out" in n for n in result.notes)
    assert packets_of(out, "audio") == packets_of(source, "audio")


def test_odd_size_is_refused_for_yuv420p_and_taken_by_yuv444p(tmp_path, denoise_models):
    source = make_clip(tmp_path / "odd.mkv", Clip(width=63, height=47, frames=3, pix_fmt="yuv444p"))
    out = tmp_path / "odd_denoised.mkv"
    with pytest.raises(ConfigError, match=r"63x47.*yuv420p needs sizes divisible by 2x2"):
        restore_video(source, out, denoise_models, level=10)
    assert not out.exists() and not work_folder_for(out).exists()
    options = VideoOptions(encoder=EncoderOptions(pix_fmt="yuv444p"))
    restore_video(source, out, denoise_models, level=10, video=options)
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert (frame.width, frame.height, frame.format.name) == (63, 47, "yuv444p")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "not a video FFmpeg can read|truncated|corrupt"),
        ("garbage", "not a video FFmpeg can read"),
        ("audio-only", "no video stream"),
    ],
)
def test_bad_files_raise_and_leave_nothing(tmp_path, sr_models, damage, message):
    path = tmp_path / "bad.mp4"
    if damage == "garbage":
        path.write_bytes(b"\x00not a video at all" * 100)
    elif damage == "truncate":
        make_clip(path, Clip(frames=12))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        with av.open(str(path), "w") as c:
            stream = c.add_stream("aac", rate=48000)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48000, 0
            c.mux(stream.encode(frame))
            c.mux(stream.encode(None))
    out = tmp_path / "bad_x2.mp4"
    with pytest.raises(ImageReadError, match=message) as info:
        restore_video(path, out, sr_models)
    assert str(path) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_a_codec_the_container_cannot_hold_is_refused(tmp_path, sr_models):
    source = make_clip(tmp_path / "in.mp4", Clip(frames=2))
    options = VideoOptions(encoder=EncoderOptions(codec="libx264"))
    with pytest.raises(ConfigError, match="the webm container cannot hold libx264"):
        restore_video(source, tmp_path / "out.webm", sr_models, video=options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_frames_above_max_pixels_are_refused(tmp_path, sr_models):
    source = make_clip(tmp_path / "in.mp4", Clip(frames=2))
    with pytest.raises(ImageReadError, match="exceed the limit of 1000 pixels"):
        restore_video(source, tmp_path / "out.mp4", sr_models, max_pixels=1000)


class _InterruptAfter(VideoProgress):
    """Ctrl-C after `n` segments are finished."""

    def __init__(self, n: int) -> None:
        self.n = n

    def segment_done(self, index: int, total: int) -> None:
        if index + 1 >= self.n:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(tmp_path, sr_models):
    source = make_clip(tmp_path / "in.mp4", Clip(frames=16, audio=True))
    whole = tmp_path / "whole.mp4"
    restore_video(source, whole, sr_models, video=EVERY_KEYFRAME)
    out = tmp_path / "resumed.mp4"
    with pytest.raises(KeyboardInterrupt):
        restore_video(source, out, sr_models, video=EVERY_KEYFRAME, progress=_InterruptAfter(2))
    assert not out.exists()
    finished = sorted(p.name for p in work_folder_for(out).iterdir() if p.suffix == ".mp4")
    assert finished == ["segment-00000.mp4", "segment-00001.mp4"]

    notes: list[str] = []

    class Notes(VideoProgress):
        def note(self, message: str) -> None:
            notes.append(message)

    result = restore_video(source, out, sr_models, video=EVERY_KEYFRAME, progress=Notes())
    assert result.resumed_segments == 2 and result.restored_frames == 8
    assert any("resuming: 2 of 4 segments" in n for n in notes)
    assert not work_folder_for(out).exists()
    assert video_pts(out) == video_pts(whole)
    for a, b in zip(decoded_rgb(out), decoded_rgb(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    assert packets_of(out, "audio") == packets_of(source, "audio")


def test_changed_settings_start_over(tmp_path, denoise_models):
    source = make_clip(tmp_path / "in.mkv", Clip(frames=8))
    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        restore_video(
            source, out, denoise_models, level=10, video=EVERY_KEYFRAME, progress=_InterruptAfter(1)
        )
    result = restore_video(source, out, denoise_models, level=20, video=EVERY_KEYFRAME)
    assert result.resumed_segments == 0 and result.restored_frames == 8


def test_deblock_before_sr(tmp_path, sr_models):
    source = make_clip(tmp_path / "in.mp4", Clip(frames=2))
    out = tmp_path / "out.mp4"
    result = restore_video(source, out, sr_models, deblock=30)
    assert result.frames == 2 and "deblock-fast.safetensors" in str(sr_models.loads)


# -- the command line --------------------------------------------------------------------------
def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scn_deploy.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        **kwargs,
    )


def test_cli_folder_with_a_video_an_image_and_a_corrupt_video(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mov", Clip(frames=4, audio=True))
    (folder / "broken.mp4").write_bytes(b"garbage" * 50)
    from PIL import Image

    Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(folder / "still.png")
    common = ["upscale", str(folder), "--model", "sr-x2-fast", "--engine", "onnx", "-o"]
    dry = _cli(*common, str(tmp_path / "out"), "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "would write" in dry.stderr and "clip_x2.mov (video 64x48 h264" in dry.stderr
    assert not (tmp_path / "out").exists()

    done = _cli(*common, str(tmp_path / "out"), "--json")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["failed"][0]["path"] == str(folder / "broken.mp4")
    assert "broken.mp4: not a video FFmpeg can read" in summary["failed"][0]["error"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_x2.mov", "still_x2.png"]
    (video,) = summary["videos"]
    assert video["frames"] == 4 and video["fps"] > 0 and video["seconds"] > 0
    assert video["engine"] == "onnx" and video["precision"] == "fp32"
    assert video["model_name"] == "sr-x2-fast"


def test_cli_output_suffix_picks_the_container_and_codec_options(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", Clip(frames=3))
    out = tmp_path / "clip.webm"
    done = _cli(
        "denoise",
        str(source),
        "--sigma",
        "10",
        "--fast",
        "--engine",
        "onnx",
        "-o",
        str(out),
        "--crf",
        "30",
        "--preset",
        "8",
    )
    assert done.returncode == 0, done.stderr
    assert _streams(out) == [("video", "vp9")]
    bad = _cli(
        "denoise",
        str(source),
        "--sigma",
        "10",
        "--fast",
        "-o",
        str(tmp_path / "x.mp4"),
        "--codec",
        "nonsense",
    )
    assert bad.returncode == 1 and "--codec nonsense: no such encoder" in bad.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_cli_resumes_after_kill_9(tmp_path):
    source = make_clip(tmp_path / "in.mp4", Clip(width=96, height=64, frames=96, gop=4))
    args = [
        "upscale", str(source), "--model", "sr-x2-fast", "--engine", "onnx",
        "--segment-seconds", "0", "-o",
    ]  # fmt: skip
    whole = _cli(*args, str(tmp_path / "whole.mp4"))
    assert whole.returncode == 0, f"rc {whole.returncode}: {whole.stderr[-2000:]}"
    out = tmp_path / "out.mp4"
    work = work_folder_for(out)
    process = subprocess.Popen(
        [sys.executable, "-m", "scn_deploy.cli", *args, str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 600  # a loaded CI machine may take long to load the model
    while time.monotonic() < deadline and process.poll() is None:
        if (work / "segment-00002.mp4").exists():
            break
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.skip("the run finished before it could be killed")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in work.glob("segment-*.mp4"))
    assert len(finished) >= 3 and not out.exists(), finished
    rerun = _cli(*args, str(out))
    assert rerun.returncode == 0, f"rc {rerun.returncode}: {rerun.stderr[-2000:]}"
    assert f"resuming: {len(finished)} of 24 segments" in rerun.stderr, rerun.stderr[-2000:]
    assert not work.exists()
    for a, b in zip(decoded_rgb(out), decoded_rgb(tmp_path / "whole.mp4"), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_ray_segments_equal_the_local_run(tmp_path):
    pytest.importorskip("ray")
    source = make_clip(tmp_path / "in.mp4", Clip(frames=16, audio=True))
    common = [
        "upscale",
        str(source),
        "--model",
        "sr-x2-fast",
        "--engine",
        "onnx",
        "--segment-seconds",
        "0",
        "--json",
        "-o",
    ]
    local = _cli(*common, str(tmp_path / "local.mp4"))
    on_ray = _cli(*common, str(tmp_path / "ray.mp4"), "--cluster", "ray", "--actors", "2")
    assert local.returncode == 0 and on_ray.returncode == 0, on_ray.stderr
    (video,) = json.loads(on_ray.stdout.strip().splitlines()[-1])["videos"]
    assert video["frames"] == 16 and video["restored_frames"] == 16
    assert video_pts(tmp_path / "ray.mp4") == video_pts(source)
    frames = zip(
        decoded_rgb(tmp_path / "ray.mp4"), decoded_rgb(tmp_path / "local.mp4"), strict=True
    )
    for a, b in frames:
        np.testing.assert_array_equal(a, b)
    assert packets_of(tmp_path / "ray.mp4", "audio") == packets_of(source, "audio")
    assert not work_folder_for(tmp_path / "ray.mp4").exists()
