"""`scn export`: model file -> verified ONNX with N pyramid scales baked in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer

from scn_deploy.cli.app import app, err, fail
from scn_deploy.errors import ScnError

FP32_TOLERANCE = 1e-4


@app.command("export")
def export_command(
    model: Annotated[str, typer.Option(help="Zoo name or model file (.safetensors).")],
    scales: Annotated[
        int | None,
        typer.Option(
            help="Pyramid scales to bake in (default: as trained; more is allowed, "
            "e.g. --scales 9 on a 6-scale model)."
        ),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset version.")] = 17,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output .onnx path (default export/NAME-sN.onnx)."),
    ] = None,
) -> None:
    """Export a model to ONNX (dynamic batch/height/width) and verify it against PyTorch."""
    try:
        from scn_deploy.engines.onnx_engine import export_dir, onnx_name
        from scn_deploy.exporting.onnx_export import export_onnx, verify_export
        from scn_deploy.modelfile import load_model
        from scn_deploy.zoo import resolve_model
    except ImportError as exc:
        raise fail(
            f"export needs PyTorch and onnx: pip install 'scn-deploy[torch]' ({exc})"
        ) from None
    try:
        path = resolve_model(model, task="sr")
        net, spec = load_model(path)
        n = scales or spec.arch.num_scales
        target = output or export_dir() / onnx_name(path, n)
        export_onnx(
            net,
            spec,
            target,
            num_scales=n,
            opset=opset,
            extra_metadata={
                "scn_source": path.name,
                "scn_source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            },
        )
        check = verify_export(net, spec, target, num_scales=n)
    except ScnError as exc:
        raise fail(str(exc)) from None
    ok = check["max_abs_error"] <= FP32_TOLERANCE
    err.print(
        f"{'ok' if ok else 'FAILED'}: {target} ({n} scales, opset {opset}); ONNX Runtime vs "
        f"PyTorch on unseen sizes: max abs error {check['max_abs_error']:.2e} "
        f"(limit {FP32_TOLERANCE:.0e}), PSNR {check['psnr_db']:.1f} dB"
    )
    if not ok:
        Path(target).unlink(missing_ok=True)
        raise typer.Exit(1)
