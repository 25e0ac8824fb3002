"""Would `scn serve` gain from batching concurrent requests? Measured on the engine itself.

    python benchmarks/serve_batching.py [--model sr-x2-fast] [--side 512] [--repeat 7]

Two concurrent requests of one image size can run as two forward passes of batch 1 (what
the service does) or as one pass of batch 2 (what batching would do). This times both, with
the engine `scn serve` loads (auto engine and precision, every core), median of --repeat
runs after a warm-up, and prints one JSON object: seconds per image each way and the gain.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from scn_deploy.bench import median_seconds
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import load_engine
from scn_deploy.zoo import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sr-x2-fast")
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    engine = load_engine(resolve_model(args.model, task="sr"), EngineOptions())
    rng = np.random.default_rng(0)
    pair = rng.random((2, engine.spec.channels, args.side, args.side), dtype=np.float32)
    one, two = pair[:1], pair[1:]

    def separate() -> None:
        engine.infer(one)
        engine.infer(two)

    apart = median_seconds(separate, args.repeat) / 2
    together = median_seconds(lambda: engine.infer(pair), args.repeat) / 2
    print(
        json.dumps(
            {
                "model": args.model,
                "engine": engine.name,
                "precision": engine.precision,
                "side": args.side,
                "seconds_per_image_batch1": round(apart, 4),
                "seconds_per_image_batch2": round(together, 4),
                "batch2_speedup": round(apart / together, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
