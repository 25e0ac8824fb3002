"""How should `scn serve` run concurrent requests? Measured on the engines themselves.

    python benchmarks/serve_batching.py [--model sr-x2-fast] [--side 512] [--repeat 7]
    python benchmarks/serve_batching.py --engines 2 [--images 12]

Batching (the default mode): two concurrent requests of one image size can run as two
forward passes of batch 1 (what the service does) or as one pass of batch 2 (what batching
would do). This times both, with the engine `scn serve` loads (auto engine and precision,
every core), median of --repeat runs after a warm-up: seconds per image each way and the gain.

Workers (`--engines N`): one engine on every core, against N engines of cores / N threads
each (`scn serve --workers N`), each restoring --images images from its own thread at once:
images per second each way. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

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
    parser.add_argument("--engines", type=int, help="compare N engines of cores / N threads")
    parser.add_argument("--images", type=int, default=12, help="per engine, with --engines")
    args = parser.parse_args()
    if args.engines:
        compare_workers(args)
        return
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


def images_per_second(engines: list, image: np.ndarray, images: int) -> float:
    """Every engine restoring ``images`` images at once, each from its own thread."""
    for engine in engines:  # compiled and warm
        engine.infer(image)
        engine.infer(image)

    def loop(engine) -> None:
        for _ in range(images):
            engine.infer(image)

    threads = [threading.Thread(target=loop, args=(engine,)) for engine in engines]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(engines) * images / (time.perf_counter() - started)


def compare_workers(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    model = resolve_model(args.model, task="sr")
    one = [load_engine(model, EngineOptions(threads=cores))]
    image = np.random.default_rng(0).random((1, one[0].spec.channels, args.side, args.side))
    image = image.astype(np.float32)
    single = images_per_second(one, image, args.images)
    threads = max(1, cores // args.engines)
    many = [load_engine(model, EngineOptions(threads=threads)) for _ in range(args.engines)]
    several = images_per_second(many, image, args.images)
    report = {
        "model": args.model,
        "engine": one[0].name,
        "precision": one[0].precision,
        "side": args.side,
        "cores": cores,
        "one_engine_images_per_s": round(single, 3),
        f"{args.engines}_engines_images_per_s": round(several, 3),
        "gain": round(several / single, 3),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
