"""The engine registry (choice of engine, device and precision) and the OpenVINO engine.

Runs without PyTorch: the zoo's shipped ONNX exports are the models.
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from scn_deploy import cpu
from scn_deploy.cli import app
from scn_deploy.engines import EngineOptions, registry
from scn_deploy.engines.registry import (
    choose_engine,
    choose_precision,
    engine_order,
    load_engine,
    resolve_device,
)
from scn_deploy.errors import ConfigError
from scn_deploy.restore import RestoreOptions, Restorer
from scn_deploy.zoo import zoo_path

runner = CliRunner()
needs_openvino = pytest.mark.skipif(
    not registry.installed("openvino"), reason="pip install 'scn-deploy[openvino]'"
)


@pytest.fixture
def fake_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write the fake /proc/cpuinfo's flags; cpu_info's cache is cleared around each test."""
    real_open = builtins.open
    cpuinfo = tmp_path / "cpuinfo"

    def fake_open(path, *args, **kwargs):
        return real_open(cpuinfo if path == "/proc/cpuinfo" else path, *args, **kwargs)

    def write(flags: str, model: str = "AMD EPYC") -> None:
        cpuinfo.write_text(f"model name\t: {model}\nflags\t\t: {flags}\n")
        cpu.cpu_info.cache_clear()

    monkeypatch.setattr(builtins, "open", fake_open)
    yield write
    cpu.cpu_info.cache_clear()


def test_cpu_description_names_the_vector_extensions(fake_cpu) -> None:
    """CPU figures are tagged with the extensions they ran on (AVX2 vs AVX-512 parts share a
    model name), read from /proc/cpuinfo."""
    fake_cpu("fpu sse avx avx2 fma")
    assert cpu.cpu_description().startswith("AMD EPYC (AVX2), ")
    assert not cpu.native_bf16()
    fake_cpu("avx2 avx512f avx512_vnni avx512_bf16")
    assert cpu.cpu_description().startswith("AMD EPYC (AVX-512, VNNI, BF16), ")
    assert cpu.native_bf16()
    fake_cpu("avx2 avx512f amx_tile amx_bf16", model="Xeon")
    assert cpu.cpu_description().startswith("Xeon (AVX-512, AMX), ") and cpu.native_bf16()
    fake_cpu("sse2", model="Something")
    assert cpu.cpu_description().startswith("Something, ")


def _installed(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    monkeypatch.setattr(registry, "installed", lambda name: name in names)


def test_auto_prefers_openvino_then_onnx_then_torch_on_cpu(monkeypatch) -> None:
    model = zoo_path("sr-x2")  # has a shipped ONNX export
    _installed(monkeypatch, "openvino", "onnx", "torch")
    assert engine_order(model, "cpu") == ["openvino", "onnx", "torch"]
    _installed(monkeypatch, "onnx", "torch")
    assert choose_engine(model, "cpu") == "onnx"
    _installed(monkeypatch, "torch")
    assert choose_engine(model, "cpu") == "torch"
    _installed(monkeypatch)
    with pytest.raises(ConfigError, match="no installed engine"):
        choose_engine(model, "cpu")


def test_auto_honours_the_precision_asked_for(monkeypatch) -> None:
    model = zoo_path("sr-x2")
    _installed(monkeypatch, "openvino", "onnx", "torch")
    assert engine_order(model, "cpu", "bf16") == ["openvino", "torch"]
    assert engine_order(model, "cpu", "int8") == ["openvino", "onnx"]
    _installed(monkeypatch, "onnx", "torch")
    assert choose_engine(model, "cpu", "bf16") == "torch"


def test_model_file_without_an_export_runs_on_torch(tmp_path: Path, monkeypatch) -> None:
    """No surprise export step for a one-off run of a model file that has no ONNX yet."""
    model = tmp_path / "mine.safetensors"
    model.write_bytes(zoo_path("sr-x2").read_bytes())
    _installed(monkeypatch, "openvino", "onnx", "torch")
    assert choose_engine(model, "cpu") == "torch"
    _installed(monkeypatch, "openvino", "onnx")  # no torch: the export path
    assert choose_engine(model, "cpu") == "openvino"


def test_onnx_files_never_go_to_torch(monkeypatch) -> None:
    _installed(monkeypatch, "onnx", "torch")
    onnx = zoo_path("sr-x2").parent.parent / "export" / "sr-x2-s3.onnx"
    assert engine_order(onnx, "cpu") == ["onnx"]


def test_cuda_order_and_device_auto(monkeypatch) -> None:
    _installed(monkeypatch, "tensorrt", "onnx", "torch")
    monkeypatch.setattr(registry, "can_run", lambda name, device: registry.installed(name))
    assert engine_order(zoo_path("sr-x2"), "cuda") == ["tensorrt", "onnx", "torch"]
    monkeypatch.setattr(registry, "cuda_present", lambda: True)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(registry, "cuda_present", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="device"):
        resolve_device("gpu")


def test_no_visible_gpu_means_cpu(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not registry.cuda_present()
    assert resolve_device("auto") == "cpu"


def _card(tmp_path: Path, monkeypatch, delta: float | None) -> Path:
    """A zoo folder whose sr-x2 card records an OpenVINO bf16 change of `delta` dB."""
    models = tmp_path / "models"
    models.mkdir()
    model = models / "sr-x2.safetensors"
    model.write_bytes(zoo_path("sr-x2").read_bytes())
    card = {"name": "sr-x2", "evaluations": []}
    if delta is not None:
        card["precision_checks"] = [
            {"engine": "openvino", "precision": "bf16", "dataset": "Set5", "psnr_delta_db": delta}
        ]
    (models / "sr-x2.json").write_text(json.dumps(card))
    monkeypatch.setenv("SCN_MODELS", str(models))
    monkeypatch.setenv("SCN_EXPORT", str(tmp_path / "export"))
    return model


@pytest.mark.parametrize(
    ("delta", "native", "expected"),
    [
        (-0.006, True, "bf16"),
        (-0.05, True, "fp32"),  # the card measured too large a loss
        (None, True, "fp32"),  # nothing measured
        (-0.006, False, "fp32"),  # emulated bf16 is slower than fp32
    ],
)
def test_auto_precision_follows_the_card_and_the_cpu(
    tmp_path: Path, monkeypatch, delta, native, expected
) -> None:
    model = _card(tmp_path, monkeypatch, delta)
    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    assert choose_precision("openvino", model, None) == expected
    assert choose_precision("onnx", model, None) == "fp32"
    assert choose_precision("openvino", model, "fp32") == "fp32"


def test_a_model_outside_the_zoo_has_no_card(tmp_path: Path) -> None:
    mine = tmp_path / "sr-x2.safetensors"
    mine.write_bytes(zoo_path("sr-x2").read_bytes())
    assert registry.zoo_card(mine) is None
    assert registry.zoo_card(zoo_path("sr-x2"))["name"] == "sr-x2"


def test_shipped_cards_allow_bf16_for_sr_x2() -> None:
    """sr-x2's card records its bf16 check (benchmarks/precision_checks.py)."""
    loss = registry.measured_loss(zoo_path("sr-x2"), "openvino", "bf16")
    assert loss is not None and loss <= registry.BF16_MAX_LOSS_DB


def test_compiled_cache_key_depends_on_everything() -> None:
    from scn_deploy.engines.openvino_engine import compiled_cache_key

    base = {
        "shape": "dynamic",
        "precision": "bf16",
        "openvino_version": "2026.4",
        "cpu": "AMD EPYC (AVX-512, VNNI, BF16), 2 cores",
    }
    key = compiled_cache_key("a" * 64, **base)
    assert key == compiled_cache_key("a" * 64, **base)
    assert key != compiled_cache_key("b" * 64, **base)
    for field, other in [
        ("shape", "1x3x256x256"),
        ("precision", "fp32"),
        ("openvino_version", "2026.5"),
        ("cpu", "AMD EPYC (AVX2), 2 cores"),
    ]:
        assert key != compiled_cache_key("a" * 64, **{**base, field: other}), field


def test_compiled_cache_key_follows_the_graph_rewrite(monkeypatch) -> None:
    """Blobs compiled before a change to the engine's graph rewrite are not imported."""
    from scn_deploy.engines import openvino_engine

    args = {"shape": "1x3x8x8", "precision": "bf16", "openvino_version": "1", "cpu": "x"}
    key = openvino_engine.compiled_cache_key("a" * 64, **args)
    monkeypatch.setattr(openvino_engine, "GRAPH_REWRITE", "something-else")
    assert key != openvino_engine.compiled_cache_key("a" * 64, **args)


@needs_openvino
def test_unshared_constants_let_convolutions_absorb_bias_and_relu() -> None:
    """SCN's body shares its weights across scales; with private copies OpenVINO fuses each
    convolution's bias and ReLU into it: no separate elementwise passes remain in fp32."""
    from scn_deploy.engines.openvino_engine import shared_core, unshare_constants
    from scn_deploy.exporting.cache import find_onnx

    core = shared_core()
    layer_types = []
    for rewrite in (False, True):
        model = core.read_model(str(find_onnx(zoo_path("sr-x2"), None)))
        copies = unshare_constants(model) if rewrite else 0
        model.reshape({0: [1, 3, 32, 32]})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        ops = compiled.get_runtime_model().get_ordered_ops()
        layer_types.append([op.get_rt_info()["layerType"].astype(str) for op in ops])
    assert copies > 0
    before, after = (sum(t in ("Subgraph", "Eltwise") for t in types) for types in layer_types)
    assert after < before / 2, (before, after)


@needs_openvino
def test_python_signals_still_work_after_openvino_engines_are_freed_out_of_order() -> None:
    """Each OpenVINO Core swaps in a signal alternate stack and puts back the one it found
    when destroyed; with one Core per engine, freeing the engines out of creation order left
    a freed stack registered and the next Python signal killed the process (SIGSEGV). Run in
    a child interpreter, so that the old failure cannot take the test process with it."""
    import subprocess
    import sys

    code = """
import gc, os, signal
import numpy as np
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.zoo import zoo_path
x = np.zeros((1, 3, 16, 16), np.float32)
first = load_engine(zoo_path("sr-x2-fast"), EngineOptions(engine="openvino", precision="fp32"))
first.infer(x)
second = load_engine(zoo_path("sr-x3-fast"), EngineOptions(engine="openvino", precision="fp32"))
second.infer(x)
del first
gc.collect()
del second
gc.collect()
seen = []
signal.signal(signal.SIGUSR1, lambda *_: seen.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
print("handled", len(seen))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "handled 1" in res.stdout, (res.returncode, res.stderr[-2000:])


@needs_openvino
def test_openvino_fp32_matches_onnx_runtime(rng) -> None:
    x = rng.random((2, 3, 40, 48), dtype=np.float32)
    ov = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="fp32"))
    ort = load_engine(zoo_path("sr-x2"), EngineOptions(engine="onnx"))
    assert ov.name == "openvino" and ov.precision == "fp32" and ov.device == "cpu"
    np.testing.assert_allclose(ov.infer(x), ort.infer(x), atol=1e-4)


@needs_openvino
@pytest.mark.parametrize("name", ["denoise-gray", "deblock-gray-fast"])
def test_openvino_runs_conditioned_models(rng, name: str) -> None:
    """Conditioned models, the half-resolution body (pixel unshuffle / shuffle) included."""
    x = rng.random((1, 1, 32, 36), dtype=np.float32)
    level = np.full((1, 1, 32, 36), 25 / 255, np.float32)
    ov = load_engine(zoo_path(name), EngineOptions(engine="openvino", precision="fp32"))
    ort = load_engine(zoo_path(name), EngineOptions(engine="onnx"))
    np.testing.assert_allclose(ov.infer(x, level), ort.infer(x, level), atol=1e-4)


@needs_openvino
def test_openvino_compiles_once_per_shape_then_loads_from_the_cache(rng) -> None:
    x = rng.random((1, 3, 24, 24), dtype=np.float32)
    first = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="fp32"))
    expected = first.infer(x)
    blob = first.cache_file((1, 3, 24, 24))
    assert blob.is_file() and blob != first.cache_file((1, 3, 24, 28))
    inode = blob.stat().st_ino
    again = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="fp32"))
    np.testing.assert_array_equal(again.infer(x), expected)
    assert blob.stat().st_ino == inode  # imported, not compiled and written again
    blob.write_bytes(b"not a compiled model")  # damaged: compiled again and replaced
    healed = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="fp32"))
    np.testing.assert_array_equal(healed.infer(x), expected)
    assert blob.stat().st_size > 1000


@needs_openvino
def test_bf16_is_refused_on_a_cpu_without_it(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="native bf16"):
        load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="bf16"))
    res = runner.invoke(
        app, ["bench", "--engine", "openvino", "--precision", "bf16", "--tile", "32"]
    )
    assert res.exit_code == 2 and "native bf16" in res.output


@needs_openvino
@pytest.mark.skipif(not cpu.native_bf16(), reason="this CPU has no native bf16")
def test_openvino_bf16_is_close_to_fp32(rng) -> None:
    x = rng.random((1, 3, 48, 48), dtype=np.float32)
    half = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="bf16"))
    full = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="fp32"))
    mse = float(np.mean((half.infer(x) - full.infer(x)) ** 2))
    assert half.precision == "bf16" and 10 * np.log10(1 / mse) > 45


@needs_openvino
def test_int8_runs_the_quantized_export() -> None:
    eng = load_engine(zoo_path("sr-x2"), EngineOptions(engine="openvino", precision="int8"))
    assert eng.precision == "int8" and eng.source.endswith("sr-x2-s3-int8.onnx")
    with pytest.raises(ConfigError, match="int8"):
        load_engine(zoo_path("sr-x3"), EngineOptions(engine="openvino", precision="int8"))
    # its elementwise kernels slow down in large windows: the tiler is told so
    assert eng.window_cost(256 * 256) == eng.window_cost(448 * 448) == 1.0
    assert 1.3 < eng.window_cost(776 * 1024) < 1.6
    assert eng.window_cost(512 * 512) < eng.window_cost(548 * 548)
    plan = Restorer(eng, RestoreOptions(tile="auto")).plan(1500, 2000)
    assert max((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in plan.tiles) <= 448 * 448


@needs_openvino
def test_upscale_reports_engine_and_precision(tmp_path: Path, photo_rgb) -> None:
    import cv2

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), photo_rgb[:48, :64])
    res = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            "--scale",
            "2",
            "--engine",
            "openvino",
            "--precision",
            "fp32",
            "-o",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert (summary["engine"], summary["precision"], summary["device"]) == (
        "openvino",
        "fp32",
        "cpu",
    )
    res = runner.invoke(app, ["upscale", str(src), "--fp16", "--precision", "bf16"])
    assert res.exit_code == 2


def test_bench_compare_lists_every_installed_engine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCN_DATA", str(tmp_path))  # no benchmark data: no PSNR column
    res = runner.invoke(
        app, ["bench", "--compare", "--tile", "32", "--repeat", "1", "--device", "cpu", "--json"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    pairs = {(r["engine"], r["precision"]) for r in doc["rows"]}
    assert ("onnx", "fp32") in pairs and ("onnx", "int8") in pairs
    assert doc["baseline"] == "onnx fp32"
    base = next(r for r in doc["rows"] if (r["engine"], r["precision"]) == ("onnx", "fp32"))
    assert base["ratio"] == 1.0
    assert all(r["mp_per_s"] > 0 and r["set5_delta_db"] is None for r in doc["rows"])
    if registry.installed("openvino"):
        assert ("openvino", "fp32") in pairs


@pytest.mark.parametrize("engine", ["onnx", "openvino", "auto"])
def test_restoring_with_an_onnx_engine_never_imports_torch(tmp_path: Path, engine) -> None:
    """The runtime that ships has no PyTorch: restoring through the ONNX exports must not
    import it even where it is installed."""
    import subprocess
    import sys

    if engine == "openvino" and not registry.installed("openvino"):
        pytest.skip("OpenVINO is not installed")
    code = (
        "import sys\n"
        "from scn_deploy.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    image = Path(__file__).resolve().parent.parent / "examples" / "astronaut.png"
    args = ["upscale", str(image), "--scale", "2", "--engine", engine, "-o", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", code, *args, "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO-TORCH"
    assert (tmp_path / "astronaut_x2.png").is_file()


# -- ONNX Runtime on CUDA, with a fake onnxruntime (no GPU needed) ------------------------------


class _FakeSession:
    """Records what ONNX Runtime was asked for; `started` is what it managed to start."""

    created: ClassVar[list[dict]] = []

    def __init__(self, path, options, providers, started=None) -> None:
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        self.providers = providers
        self._started = started if started is not None else names
        _FakeSession.created.append({"path": path, "providers": providers})

    def get_providers(self) -> list[str]:
        return list(self._started)


def _fake_ort(monkeypatch, available: list[str], started: list[str] | None = None):
    import onnxruntime as ort

    _FakeSession.created = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(available))
    monkeypatch.setattr(
        ort,
        "InferenceSession",
        lambda path, options=None, providers=None: _FakeSession(path, options, providers, started),
    )


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:0", 0), ("cuda:3", 3)])
def test_onnx_cuda_provider_gets_the_device_index(monkeypatch, device: str, index: int) -> None:
    from scn_deploy.engines.onnx_engine import providers_for

    _fake_ort(
        monkeypatch, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    providers = providers_for(device)
    assert providers[0] == ("CUDAExecutionProvider", {"device_id": index})
    # ORT's own TensorRT provider is not used (rebuilds per tile shape with default options)
    assert all("Tensorrt" not in (p[0] if isinstance(p, tuple) else p) for p in providers)
    assert providers_for("cpu") == ["CPUExecutionProvider"]


def test_onnx_cuda_without_a_cuda_provider_is_refused(monkeypatch) -> None:
    from scn_deploy.engines.onnx_engine import providers_for

    _fake_ort(monkeypatch, ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="no CUDA provider"):
        providers_for("cuda:1")


def test_onnx_cuda_session_that_fell_back_to_cpu_is_refused(monkeypatch) -> None:
    """Missing CUDA / cuDNN libraries make ORT start on the CPU without an error: caught."""
    from scn_deploy.engines.onnx_engine import OnnxEngine

    onnx = zoo_path("sr-x2").parent.parent / "export" / "sr-x2-s3.onnx"
    _fake_ort(
        monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]
    )
    with pytest.raises(ConfigError, match="could not start its CUDA provider on cuda:2"):
        OnnxEngine(onnx, device="cuda:2")
    assert _FakeSession.created[0]["providers"][0] == ("CUDAExecutionProvider", {"device_id": 2})


def test_thread_count_travels_in_the_engine_options(monkeypatch) -> None:
    """`EngineOptions.threads` (or SCN_THREADS when it is unset) reaches the ONNX Runtime
    session; no backend reads the environment itself."""
    from scn_deploy.engines import EngineOptions

    monkeypatch.delenv("SCN_THREADS", raising=False)
    engine = load_engine(zoo_path("sr-x2"), EngineOptions(engine="onnx", device="cpu", threads=1))
    assert engine.session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("SCN_THREADS", "2")
    engine = load_engine(zoo_path("sr-x2"), EngineOptions(engine="onnx", device="cpu"))
    assert engine.session.get_session_options().intra_op_num_threads == 2
    source = Path(registry.__file__).parent
    for backend in ("onnx_engine.py", "openvino_engine.py"):
        assert "SCN_THREADS" not in (source / backend).read_text()


@pytest.mark.parametrize("gray", [False, True])
def test_fast_plane_conversion_equals_the_numpy_rounding(gray: bool) -> None:
    """The tiler's uint8 conversion (OpenCV, plane by plane, strided views) gives exactly
    clip(rint(x * 255)), halves to even included; uint16 and float keep the numpy path."""
    from scn_deploy.restore import planes_to_image, to_dtype

    rng = np.random.default_rng(3)
    full = rng.random((1 if gray else 3, 70, 90), dtype=np.float32) * 1.4 - 0.2
    full[:, 0, :20] = (np.arange(20, dtype=np.float32) + 0.5) / 255.0  # exact halves
    planes = full[:, 5:65, 7:83]  # a strided crop, as the tiler hands over
    expected = np.clip(np.rint(planes * 255.0), 0, 255).astype(np.uint8)
    expected = expected[0] if gray else expected.transpose(1, 2, 0)
    got = planes_to_image(planes, np.uint8, gray=gray)
    assert got.dtype == np.uint8 and np.array_equal(got, expected)
    assert np.array_equal(to_dtype(planes, np.uint8), np.clip(np.rint(planes * 255.0), 0, 255))
    wide = planes_to_image(planes, np.uint16, gray=gray)
    assert wide.dtype == np.uint16 and wide.shape == expected.shape
    assert planes_to_image(planes, np.float32, gray=gray).max() <= 1.0
