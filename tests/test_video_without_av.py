"""Without PyAV (the `video` extra), a video input fails with one line saying what to install,
and the images of the same run are still restored. Runs whether or not `av` is installed."""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image

from scn_deploy.engines.options import EngineOptions
from scn_deploy.files import FileOptions
from scn_deploy.pipeline import RunRequest, run
from scn_deploy.zoo import choose_models


def test_a_video_without_pyav_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "still.png")
    request = RunRequest(
        task="sr",
        inputs=[tmp_path],
        models=choose_models("sr-x2-fast", task="sr", scale=2),
        engine=EngineOptions(engine="onnx"),
        files=FileOptions(out=tmp_path / "out"),
    )
    summary = run(request)
    assert summary.outputs == [str(tmp_path / "out" / "still_x2.png")]
    ((path, error),) = summary.failed
    assert path == str(tmp_path / "clip.mp4")
    assert (
        error
        == f"{tmp_path / 'clip.mp4'}: reading videos needs PyAV: pip install 'scn-deploy[video]'"
    )
