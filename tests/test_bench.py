"""`scn bench` runs with the request's engine options (the runtime's engines, no torch)."""

from __future__ import annotations

from scn_deploy.bench import BenchRequest, run_bench
from scn_deploy.engines.options import EngineOptions


def test_bench_runs_the_requested_engine_options() -> None:
    options = EngineOptions(engine="onnx", device="cpu", precision="fp32", num_scales=6)
    request = BenchRequest(model="sr-x2", engine=options, tile=32, batch=2, repeat=1)
    assert request.engine_options == EngineOptions("onnx", "cpu", "fp32", 6, tile=32, batch=2)
    result = run_bench(request)
    assert (result.engine, result.device, result.precision) == ("onnx", "cpu", "fp32")
    assert (result.scales, result.tile, result.batch) == (6, 32, 2)  # export/sr-x2-s6.onnx
    assert result.mp_per_s > 0 and result.ms_per_tile > 0
