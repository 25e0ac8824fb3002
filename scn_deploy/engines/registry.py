"""The engine registry: which backends exist, which are installed here, what `--engine auto`
and `--device auto` pick, and loading one.

Backends are imported only when loaded, so `--engine onnx` never imports PyTorch.

`--engine auto` tries, in this order, the backends that are installed and can run the
device and precision asked for (fastest first, as measured by `scn bench --compare`):

- CUDA: tensorrt > onnx (ONNX Runtime's CUDA provider) > torch
- CPU: openvino > onnx > torch

A `.safetensors` model whose ONNX export does not exist yet runs on torch when PyTorch is
installed (no export step for a one-off run); otherwise the ONNX export is used or made.
With no precision asked for, OpenVINO runs bf16 where the CPU has native bf16 and the
model's card records a bf16 loss of at most `BF16_MAX_LOSS_DB`; every other case runs fp32.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from scn_deploy.engines.base import Engine, UnsupportedModel
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
BF16_MAX_LOSS_DB = 0.02


@dataclass(frozen=True)
class Backend:
    """One engine: the package it needs, the pip extra that installs it, what it runs, and
    where its `Engine` class lives (imported only when the backend is loaded)."""

    name: str
    package: str
    extra: str
    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    runs_onnx: bool  # runs the ONNX export (else the .safetensors model file)
    engine_class: str  # "module:Class"

    def load_class(self) -> type[Engine]:
        module, _, name = self.engine_class.partition(":")
        return getattr(importlib.import_module(module), name)


_MODULE = "scn_deploy.engines"
BACKENDS: dict[str, Backend] = {
    "tensorrt": Backend(
        "tensorrt",
        "tensorrt",
        "gpu",
        ("cuda",),
        ("fp32", "fp16"),
        True,
        f"{_MODULE}.tensorrt_engine:TensorrtEngine",
    ),
    "openvino": Backend(
        "openvino",
        "openvino",
        "openvino",
        ("cpu",),
        ("fp32", "bf16", "int8"),
        True,
        f"{_MODULE}.openvino_engine:OpenvinoEngine",
    ),
    "onnx": Backend(
        "onnx",
        "onnxruntime",
        "",
        ("cpu", "cuda"),
        ("fp32", "fp16", "int8"),
        True,
        f"{_MODULE}.onnx_engine:OnnxEngine",
    ),
    "torch": Backend(
        "torch",
        "torch",
        "torch",
        ("cpu", "cuda"),
        ("fp32", "fp16", "bf16"),
        False,
        f"{_MODULE}.torch_engine:TorchEngine",
    ),
}
ENGINE_NAMES = ("auto", *BACKENDS)
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("tensorrt", "onnx", "torch"),
    "cpu": ("openvino", "onnx", "torch"),
}


def installed(name: str) -> bool:
    """Whether the backend's package is importable (checked without importing it)."""
    return importlib.util.find_spec(BACKENDS[name].package) is not None


def torch_available() -> bool:
    """Whether PyTorch is installed (checked without importing it)."""
    return installed("torch")


def install_hint(name: str) -> str:
    extra = BACKENDS[name].extra
    return f"pip install 'scn-deploy[{extra}]'" if extra else "pip install scn-deploy"


def _device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def can_run(name: str, device: str) -> bool:
    """Whether backend `name` is installed and can run on `device` here."""
    kind = _device_kind(device)
    if kind not in BACKENDS[name].devices or not installed(name):
        return False
    if name == "onnx" and kind == "cuda":
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    return True


def cuda_present() -> bool:
    """Whether an NVIDIA GPU is visible to this process (device nodes, CUDA_VISIBLE_DEVICES);
    checked without importing a CUDA library."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_device(device: str) -> str:
    """`auto` -> "cuda" when a GPU is visible and an installed engine can use it, else "cpu";
    other values are checked and returned."""
    if device == "auto":
        if cuda_present() and any(can_run(n, "cuda") for n in AUTO_ORDER["cuda"]):
            return "cuda"
        return "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


def onnx_precision(engine: str, precision: str) -> str:
    """Which ONNX export an engine runs for a precision: int8 runs the quantized export,
    ONNX Runtime fp16 the fp16 export; OpenVINO (bf16) and TensorRT (fp16 kernels) build
    their own precision from the fp32 export."""
    if precision == "int8" or (engine == "onnx" and precision == "fp16"):
        return precision
    return "fp32"


def choose_engine(
    model: Path, device: str, precision: str | None = None, num_scales: int | None = None
) -> str:
    """The backend `--engine auto` tries first for `model` on `device`."""
    return engine_order(model, device, precision, num_scales)[0]


def engine_order(
    model: Path, device: str, precision: str | None = None, num_scales: int | None = None
) -> list[str]:
    """The backends `--engine auto` tries for `model` on `device`, in order (see the module
    docstring); raises `ConfigError` when none is installed that could."""
    from scn_deploy.exporting.cache import find_onnx

    kind = _device_kind(device)
    order = [n for n in AUTO_ORDER[kind] if can_run(n, device)]
    if precision is not None:
        order = [n for n in order if precision in BACKENDS[n].precisions]
    if model.suffix.lower() == ".onnx":
        order = [n for n in order if BACKENDS[n].runs_onnx]
    elif "torch" in order and order[0] != "torch":
        onnx_ready = any(
            find_onnx(model, num_scales, precision=onnx_precision(n, precision or "fp32"))
            for n in order
            if BACKENDS[n].runs_onnx
        )
        if not onnx_ready:
            order.remove("torch")
            order.insert(0, "torch")
    if not order:
        wanted = f"{precision} " if precision else ""
        raise ConfigError(
            f"no installed engine runs {wanted}{model.suffix or 'models'} on {device}; "
            f"engines for {kind}: {', '.join(AUTO_ORDER[kind])} ({install_hint('openvino')} "
            f"or {install_hint('torch')})"
        )
    return order


def zoo_card(model: Path) -> dict | None:
    """The zoo card (models/NAME.json) of a zoo model file or of its export, else None."""
    from scn_deploy.exporting.cache import export_dir
    from scn_deploy.paths import models_dir

    folder = model.resolve().parent
    if folder not in (models_dir().resolve(), export_dir().resolve()):
        return None
    name = model.stem
    if model.suffix == ".onnx":  # export/NAME-sN[-fp16|-int8].onnx
        name = re.sub(r"-s\d+(-fp16|-int8)?$", "", name)
    card = models_dir() / f"{name}.json"
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError):
        return None


def measured_loss(model: Path, engine: str, precision: str) -> float | None:
    """The largest PSNR loss (dB, >= 0) the model's card records for engine x precision
    against fp32, or None when the card records none."""
    card = zoo_card(model) or {}
    deltas = [
        float(c["psnr_delta_db"])
        for c in card.get("precision_checks", [])
        if c.get("engine") == engine and c.get("precision") == precision
    ]
    return max(0.0, -min(deltas)) if deltas else None


def choose_precision(engine: str, model: Path, precision: str | None) -> str:
    """`precision` when given; else bf16 for OpenVINO on a CPU with native bf16 when the
    model's card shows at most `BF16_MAX_LOSS_DB` lost, else fp32."""
    from scn_deploy.cpu import native_bf16

    if precision is not None:
        return precision
    if engine == "openvino" and native_bf16():
        loss = measured_loss(model, "openvino", "bf16")
        if loss is not None and loss <= BF16_MAX_LOSS_DB:
            return "bf16"
    return "fp32"


def load_engine(model: str | os.PathLike[str], options: EngineOptions | None = None) -> Engine:
    """Load `model` (a .safetensors model file or an exported .onnx) into the engine that
    `options` choose (`scn_deploy.engines.options.EngineOptions`; default: the fastest
    installed engine, CUDA when usable, the precision as the module docstring says)."""
    options = options or EngineOptions()
    engine, precision = options.engine, options.precision
    if engine not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_NAMES)}")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    device = resolve_device(options.device)
    options = replace(options, device=device, threads=options.resolved_threads())
    path = Path(model)
    if engine != "auto":
        return _with_twin(_load(engine, path, options), path, options)
    order = engine_order(path, device, precision, options.num_scales)
    for name in order[:-1]:
        try:  # e.g. an fp16 .onnx file, which OpenVINO does not run: the next engine does
            loaded = _load(name, path, options)
        except UnsupportedModel:
            continue
        return _with_twin(loaded, path, options)
    return _with_twin(_load(order[-1], path, options), path, options)


def _with_twin(engine: Engine, path: Path, options: EngineOptions) -> Engine:
    """Give a lower-precision or CUDA engine a loader for its fp32 twin on the CPU (same
    model, same backend; ONNX Runtime for TensorRT): the receptive field is measured there,
    free of bf16 / fp16 / TF32 rounding and of the GPU engine's batch and shape limits."""
    if engine.precision == "fp32" and not engine.device.startswith("cuda"):
        return engine
    name = "onnx" if engine.name == "tensorrt" else engine.name
    if path.suffix.lower() == ".onnx" and engine.precision == "int8":
        return engine  # only the quantized file is known: no fp32 twin
    twin = replace(options, device="cpu", precision="fp32")
    engine.fp32_twin = functools.partial(_load, name, path, twin)
    return engine


def _load(name: str, path: Path, options: EngineOptions) -> Engine:
    """Backend `name` loaded with `path`: checks what it needs and runs, chooses the
    precision, finds (or makes) the file it runs, and builds it through its class's `load`."""
    backend, device = BACKENDS[name], options.device
    if not installed(name):
        raise ConfigError(f"the {name} engine needs {backend.package}: {install_hint(name)}")
    if _device_kind(device) not in backend.devices:
        raise ConfigError(f"the {name} engine runs on {' or '.join(backend.devices)}, not {device}")
    chosen = choose_precision(name, path, options.precision)
    if chosen not in backend.precisions:
        raise ConfigError(f"the {name} engine runs {', '.join(backend.precisions)}, not {chosen}")
    file = path
    if backend.runs_onnx and path.suffix.lower() != ".onnx":
        from scn_deploy.exporting.cache import onnx_for

        file = onnx_for(path, options.num_scales, precision=onnx_precision(name, chosen))
    return backend.load_class().load(file, device=device, precision=chosen, options=options)
