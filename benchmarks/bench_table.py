"""Markdown table from `scn bench --json-file` results (the README's speed table).

Usage: python benchmarks/bench_table.py benchmarks/results/bench-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(doc: dict) -> str:
    image = doc.get("image") or {}
    size = "x".join(str(v) for v in image.get("size", []))
    whole = f"{image['mp_per_s']:.3f} ({size} in, {image['tiles']} tiles)" if image else "-"
    gflops = f"{doc['gflops']:.1f}" if doc.get("gflops") is not None else "-"
    frac = doc.get("fraction_of_peak")
    share = "-" if frac is None else f"{100 * frac:.0f}%"
    return (
        f"| {doc['engine']} {doc['precision']} | {doc['device']} | {doc['tile']} | "
        f"{doc['mp_per_s']:.3f} | {doc['ms_per_tile']:.0f} | {whole} | {doc['peak_rss_mb']:.0f} | "
        f"{gflops} | {doc['gemm_peak_gflops']:.1f} | {share} |"
    )


def main() -> None:
    docs = [json.loads(Path(p).read_text()) for p in sys.argv[1:]]
    docs.sort(key=lambda d: (d["device"], -d["mp_per_s"]))
    print(
        "| engine | device | tile | output MP/s (tiles) | ms/tile | output MP/s (whole image) "
        "| peak RSS MiB | GFLOP/s | GEMM peak | of peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for doc in docs:
        print(row(doc))
    hosts = sorted({d["host"] for d in docs})
    print(
        f"\nMachine: {', '.join(hosts)}; model {Path(docs[0]['model']).name}, "
        f"{docs[0]['scales']} scales."
    )


if __name__ == "__main__":
    main()
