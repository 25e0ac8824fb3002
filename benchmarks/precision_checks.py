"""Measure what lower precision costs each zoo model, and record it in its card.

For every zoo model, evaluates one benchmark set at one level with OpenVINO in fp32 and bf16
(and, where the model has an int8 export, int8 on OpenVINO and ONNX Runtime), and writes the
PSNR-Y change from fp32 into `models/NAME.json` under "precision_checks" and into a "Lower
precision" section of its card (`--cards-only` rewrites that section from the JSON without
evaluating; run it after benchmarks/zoo_card.py). `--engine auto
--precision auto` runs bf16 only where that change is at most 0.02 dB
(`scn_deploy.engines.registry.BF16_MAX_LOSS_DB`).

    python benchmarks/precision_checks.py [NAME ...]     (default: every zoo model)

Sets: SR Set5 at the model's scale; denoise Set12 (gray) or CBSD68 (colour) at sigma 25;
deblock Classic5 (gray, Y protocol) or LIVE1 (colour JPEG protocol) at quality 10.
bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX): elsewhere the script stops.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from scn_deploy.cpu import cpu_description, native_bf16
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import installed
from scn_deploy.evaluate import EvalRequest, evaluate
from scn_deploy.exporting.cache import find_onnx
from scn_deploy.modelfile import read_spec
from scn_deploy.paths import data_root
from scn_deploy.zoo import available_names, zoo_path


def protocol(name: str) -> tuple[str, dict[str, object], list[str]]:
    """(dataset, EvalRequest fields, extra `scn eval` flags) for a zoo model."""
    spec = read_spec(zoo_path(name))
    gray = spec.channels == 1
    if spec.task.upscales:
        return "Set5", {"task": "sr", "level": spec.scale}, ["--scale", str(spec.scale)]
    if spec.task.name == "denoise":
        return (
            ("Set12" if gray else "CBSD68"),
            {"task": "denoise", "level": 25.0},
            ["--sigma", "25"],
        )
    fields: dict[str, object] = {"task": "deblock", "level": 10, "colour": not gray}
    return (
        ("Classic5" if gray else "LIVE1"),
        fields,
        ["--quality", "10"] + ([] if gray else ["--colour"]),
    )


def psnr(name: str, dataset: Path, fields: dict[str, object], engine: str, precision: str) -> float:
    options = EngineOptions(engine=engine, device="cpu", precision=precision)
    request = EvalRequest(data=[dataset], model=name, engine=options, **fields)  # type: ignore[arg-type]
    value = evaluate(request).results[0].psnr_y
    assert value is not None
    return value


def check(name: str, root: Path) -> list[dict[str, object]]:
    dataset_name, fields, flags = protocol(name)
    dataset = next(root.glob(f"benchmarks/*/{dataset_name}"))
    pairs = [("openvino", "bf16")]
    if find_onnx(zoo_path(name), None, precision="int8") is not None:
        pairs += [("openvino", "int8"), ("onnx", "int8")]
    reference = psnr(name, dataset, fields, "openvino", "fp32")
    checks = []
    for engine, precision in pairs:
        value = psnr(name, dataset, fields, engine, precision)
        words = ["scn", "eval", "--data", dataset_name, "--task", str(fields["task"]), *flags]
        words += ["--model", name, "--engine", engine, "--precision", precision]
        command = shlex.join(words)
        checks.append(
            {
                "engine": engine,
                "precision": precision,
                "dataset": dataset_name,
                "psnr_y": round(value, 4),
                "fp32_psnr_y": round(reference, 4),
                "psnr_delta_db": round(value - reference, 4),
                "command": command,
                "cpu": cpu_description(),
            }
        )
        print(f"{name}: {engine} {precision} {dataset_name} {value - reference:+.4f} dB")
    return checks


SECTION = "## Lower precision"


def card_section(checks: list[dict[str, object]]) -> str:
    """The model card's section on what bf16 / int8 cost, from its precision checks."""
    lines = [
        SECTION,
        "",
        "PSNR-Y change from fp32 (OpenVINO fp32), measured by `python "
        "benchmarks/precision_checks.py`; `--precision auto` runs bf16 where the CPU has it "
        "natively and this change is at most 0.02 dB.",
        "",
        "| engine | precision | dataset | PSNR-Y | change | command |",
        "|---|---|---|---:|---:|---|",
    ]
    for c in checks:
        lines.append(
            f"| {c['engine']} | {c['precision']} | {c['dataset']} | {c['psnr_y']:.3f} | "
            f"{c['psnr_delta_db']:+.4f} | `{c['command']}` |"
        )
    lines.append(f"\nCPU: {checks[0]['cpu']}." if checks else "")
    return "\n".join(lines) + "\n"


def write_card_section(name: str, checks: list[dict[str, object]]) -> None:
    """Replace (or append) the lower-precision section of models/NAME.md."""
    path = zoo_path(name).with_suffix(".md")
    text = path.read_text()
    if SECTION in text:
        head, _, rest = text.partition(SECTION)
        tail = rest.split("\n## ", 1)
        text = head + card_section(checks) + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip() + "\n\n" + card_section(checks)
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo model names (default: all)")
    parser.add_argument(
        "--cards-only", action="store_true", help="rewrite the cards' section from the JSON"
    )
    args = parser.parse_args()
    if args.cards_only:
        for name in args.names or available_names():
            card = json.loads(zoo_path(name).with_suffix(".json").read_text())
            write_card_section(name, card.get("precision_checks", []))
        return 0
    root = data_root()
    if root is None:
        print("no benchmark data (set SCN_DATA)", file=sys.stderr)
        return 2
    if not installed("openvino") or not native_bf16():
        print("needs OpenVINO and a CPU with native bf16", file=sys.stderr)
        return 2
    for name in args.names or available_names():
        card_path = zoo_path(name).with_suffix(".json")
        card = json.loads(card_path.read_text())
        card["precision_checks"] = check(name, root)
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        write_card_section(name, card["precision_checks"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
