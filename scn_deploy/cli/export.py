"""`scn export`: model file -> verified ONNX (fp32/fp16/int8) with N pyramid scales baked in,
and optionally a TensorRT engine built from it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scn_deploy.cli.app import app, err, fail, parse_hw
from scn_deploy.errors import ConfigError, ScnError


@app.command("export")
def export_command(
    model: Annotated[
        str | None,
        typer.Option(
            help="Zoo name or model file (.safetensors). Default: every installed zoo model."
        ),
    ] = None,
    scales: Annotated[
        int | None,
        typer.Option(
            help="Pyramid scales to bake in (default: as trained; more is allowed, "
            "e.g. --scales 9 on a 6-scale model)."
        ),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16",
            help="Half-precision ONNX (fp16 weights and I/O; checked: PSNR >= 50 dB vs fp32). "
            "With --trt: build the TensorRT engine with fp16 kernels.",
        ),
    ] = False,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also write an int8 (QDQ) copy quantized with ONNX Runtime, calibrated on "
            "--calib images (CPU speed-up; its quality cost is measured with `scn eval`).",
        ),
    ] = False,
    calib: Annotated[
        Path | None,
        typer.Option(help="Folder of calibration images for --int8 (a dozen photos suffice)."),
    ] = None,
    trt: Annotated[
        bool,
        typer.Option(
            "--trt",
            help="Build a TensorRT engine from the ONNX (needs an NVIDIA GPU and the tensorrt "
            "package); cached by ONNX hash, TensorRT version, GPU, precision and profile.",
        ),
    ] = False,
    tile: Annotated[
        int,
        typer.Option(
            help="TensorRT profile for tiles of up to T px (plus the model's overlap bound; "
            "batch up to 3x --batch for gray models): the engine `scn upscale --engine "
            "tensorrt --tile T --batch B` loads from the cache."
        ),
    ] = 256,
    min_shape: Annotated[
        str | None, typer.Option(help="TensorRT profile minimum HxW (overrides --tile).")
    ] = None,
    opt_shape: Annotated[str | None, typer.Option(help="TensorRT profile optimum HxW.")] = None,
    max_shape: Annotated[str | None, typer.Option(help="TensorRT profile maximum HxW.")] = None,
    batch: Annotated[
        int, typer.Option(help="TensorRT profile: tiles per forward pass (as --batch of a run).")
    ] = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder (NAME-sN[-fp16|-int8].onnx inside), or an .onnx file name with "
            "--model. Default: the export folder (export/, or $SCN_EXPORT).",
        ),
    ] = None,
) -> None:
    """Export models to ONNX (dynamic batch/height/width) and verify them against PyTorch.

    Without --model, every installed zoo model is exported with the same options. Prints the
    verification figures (ONNX Runtime vs PyTorch on two input sizes never used at export).
    --int8 adds NAME-sN-int8.onnx; --trt then builds a TensorRT engine of each into the cache
    (after every ONNX file is written; without a GPU or TensorRT it stops with what to
    install).
    """
    if int8 and calib is None:
        raise fail("--int8 needs --calib DIR (images to calibrate on)", 2)
    if int8 and fp16:
        raise fail("--int8 starts from the fp32 export: drop --fp16", 2)
    shapes = [
        parse_hw(v, n)
        for v, n in (
            (min_shape, "--min-shape"),
            (opt_shape, "--opt-shape"),
            (max_shape, "--max-shape"),
        )
    ]
    if any(shapes) and not all(shapes):
        raise fail("give all of --min-shape, --opt-shape and --max-shape, or none", 2)
    try:
        from scn_deploy.exporting.cache import export_dir, onnx_name
        from scn_deploy.exporting.onnx_export import export_model
        from scn_deploy.modelfile import read_spec
        from scn_deploy.zoo import available_names, resolve_model
    except ImportError as exc:
        raise fail(
            f"export needs PyTorch and onnx: pip install 'scn-deploy[torch]' ({exc})"
        ) from None
    if model is None and output is not None and output.suffix.lower() == ".onnx":
        raise fail("without --model, -o is a folder (every zoo model is exported into it)", 2)
    names = [model] if model is not None else available_names()
    if not names:
        raise fail("no zoo models are installed: give --model FILE", 2)
    exported = []
    try:
        for name in names:
            path = resolve_model(name, task="sr")
            if path.suffix.lower() == ".onnx":
                raise ConfigError(f"{path} is already an ONNX file: pass the .safetensors model")
            n = scales or read_spec(path).arch.num_scales
            precision = "fp16" if fp16 and not trt else "fp32"
            folder = output if output is not None else export_dir()
            target = folder / onnx_name(path, n, precision)
            if model is not None and output is not None and output.suffix.lower() == ".onnx":
                target = output
            report = export_model(path, target, num_scales=n, precision=precision, opset=opset)
            err.print(f"ok: {report.describe()}", highlight=False, markup=False)
            if int8:
                _int8(path, target, n, calib)  # type: ignore[arg-type]
            exported.append((path, target))
        if trt:
            from scn_deploy.exporting.tensorrt_build import require_tensorrt

            try:
                require_tensorrt()
            except ConfigError as exc:
                raise ConfigError(
                    f"the ONNX files are written, but no TensorRT engine was built: {exc} "
                    "(TensorRT engines need an NVIDIA GPU)"
                ) from None
            for path, target in exported:
                _trt(path, target, shapes, tile, batch, fp16)
    except ScnError as exc:
        raise fail(str(exc)) from None


def _int8(path: Path, target: Path, n: int, calib: Path) -> None:
    from scn_deploy.exporting.cache import onnx_name
    from scn_deploy.exporting.int8 import quantize_int8
    from scn_deploy.exporting.onnx_export import verify_export
    from scn_deploy.modelfile import load_model

    q_path = target.with_name(onnx_name(path, n, "int8"))
    quantize_int8(target, q_path, calib)
    net, spec = load_model(path)
    check = verify_export(net, spec, q_path, num_scales=n)
    err.print(
        f"ok: {q_path} (int8, calibrated on {calib}); vs PyTorch fp32: max abs error "
        f"{check['max_abs_error']:.2e}, PSNR {check['psnr_db']:.1f} dB (random input; "
        "measure real quality with `scn eval --model` on it)",
        highlight=False,
        markup=False,
    )


def _trt(path: Path, target: Path, shapes: list, tile: int, batch: int, fp16: bool) -> None:
    from scn_deploy.exporting.metadata import read_onnx_metadata
    from scn_deploy.exporting.tensorrt_build import TrtProfile, build_engine, profile_for

    spec, n, meta = read_onnx_metadata(target)
    if meta.get("scn_precision", "fp32") != "fp32":
        # TensorRT builds fp16 kernels from the fp32 export (what --engine tensorrt does), so
        # both find the same cached engine; an fp16 export would give it fp16 inputs.
        from scn_deploy.exporting.cache import onnx_for

        target = onnx_for(path, n, precision="fp32")
    if all(shapes):
        profile = TrtProfile.explicit(spec.channels, batch, *shapes)
    else:
        profile = profile_for(spec, n, batch=batch, tile=tile)
    built = build_engine(target, profile=profile, fp16=fp16)
    how = "from the cache" if built.cached else f"built in {built.seconds:.1f} s"
    err.print(f"ok: TensorRT engine {built.path} ({how}; {built.describe()})", markup=False)
