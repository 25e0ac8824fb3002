"""Training throughput: patches/s and achieved GFLOP/s against the GEMM peak of this machine.

Usage:
    python benchmarks/train_throughput.py [--presets small base] [--variants eager channels_last]
        [--steps 6] [--batch 16] [--patch 48] [--scale 2] [--num-scales 3] [--device cpu]
        [--json FILE]

The GEMM peak is measured in the same run (fp32 2048x2048 matmuls, best of several, with numpy's
BLAS and with torch: the best of the two, see `scn_deploy.bench.gemm_peak_gflops`). One training
step costs ~3x the forward FLOPs (forward, gradient w.r.t. inputs, gradient w.r.t. weights);
forward FLOPs come from `flops_per_output_megapixel` (convolutions only).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from scn_deploy.arch import preset_config
from scn_deploy.arch.facts import flops_per_output_megapixel
from scn_deploy.arch.scn import build_network
from scn_deploy.bench import gemm_peak_gflops, host_description

#: fp32 NCHW, fp32 channels_last, bf16 autocast (NCHW, then channels_last: oneDNN's bf16
#: kernels want NHWC), and torch.compile of the fp32 and the bf16 channels_last step.
VARIANTS = (
    "eager",
    "channels_last",
    "bf16",
    "bf16_channels_last",
    "compile",
    "compile_bf16_channels_last",
)


def bench_variant(preset: str, variant: str, args: argparse.Namespace) -> dict[str, float | str]:
    cfg = preset_config(preset, task="sr", scale=args.scale, num_scales=args.num_scales)
    torch.manual_seed(0)
    model = build_network(cfg).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    p, s = args.patch, args.scale
    x = torch.rand(args.batch, 3, p, p, device=args.device)
    y = torch.rand(args.batch, 3, p * s, p * s, device=args.device)
    forward = model
    if variant.endswith("channels_last"):
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.contiguous(memory_format=torch.channels_last)
    if variant.startswith("compile"):
        forward = torch.compile(model)
    use_bf16 = "bf16" in variant
    device_type = "cuda" if args.device.startswith("cuda") else "cpu"

    def step() -> None:
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16):
            out = forward(x)
        loss = F.l1_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    sec = sorted(times)[len(times) // 2]
    out_mp = args.batch * (p * s) ** 2 / 1e6
    step_gflop = 3 * flops_per_output_megapixel(cfg) * out_mp / 1e9
    return {
        "preset": preset,
        "variant": variant,
        "seconds_per_step": sec,
        "patches_per_s": args.batch / sec,
        "gflop_per_step": step_gflop,
        "gflops": step_gflop / sec,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "base"])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["eager", "channels_last", "bf16", "bf16_channels_last"],
        choices=VARIANTS,
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--num-scales", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    gemm = gemm_peak_gflops(args.device)
    peak = gemm["peak"]
    device_name = f"{host_description(args.device)}, {torch.get_num_threads()} threads"
    libs = ", ".join(f"{k} {v:.1f}" for k, v in gemm.items() if k != "peak")
    print(f"device: {device_name}; torch {torch.__version__}; fp32 GEMM peak {peak:.1f} ({libs})")
    rows = []
    for preset in args.presets:
        for variant in args.variants:
            r = bench_variant(preset, variant, args)
            r["fraction_of_peak"] = r["gflops"] / peak
            rows.append(r)
            print(
                f"{preset:6s} {variant:26s} {r['seconds_per_step']:.3f} s/step  "
                f"{r['patches_per_s']:.2f} patches/s  {r['gflops']:.1f} GFLOP/s  "
                f"({100 * r['fraction_of_peak']:.0f}% of GEMM peak)",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "device": device_name,
                    "torch": torch.__version__,
                    "gemm_peak_gflops": peak,
                    "gemm_by_library": gemm,
                    "batch": args.batch,
                    "patch": args.patch,
                    "scale": args.scale,
                    "num_scales": args.num_scales,
                    "results": rows,
                },
                fh,
                indent=2,
            )


if __name__ == "__main__":
    main()
