"""What `scn info` reports about a model file or an untrained preset network."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.facts import flops_per_output_megapixel
from scn_deploy.modelfile import read_header, read_spec


@dataclass
class ModelSummary:
    spec: ModelSpec
    params: int
    flops_per_mp: float
    num_scales: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "description": self.spec.describe(),
            "params": self.params,
            "flops_per_mp": self.flops_per_mp,
            "num_scales": self.num_scales,
            "config": self.spec.to_dict(),
        }


def _flops(spec: ModelSpec, num_scales: int) -> float:
    return flops_per_output_megapixel(spec.arch, num_scales)


def summarize_file(path: str | os.PathLike[str], num_scales: int | None = None) -> ModelSummary:
    """Spec, parameter count (from the file's tensor shapes) and FLOPs of a model file."""
    path = Path(path)
    spec = read_spec(path)
    header = read_header(path)
    params = sum(
        math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__"
    )
    n = num_scales or spec.arch.num_scales
    return ModelSummary(spec, params, _flops(spec, n), n, str(path))


def summarize_spec(spec: ModelSpec, num_scales: int | None = None) -> ModelSummary:
    """The same summary for an untrained network (needs torch to count parameters)."""
    import torch

    from scn_deploy.arch.scn import build_network, count_parameters

    with torch.device("meta"):
        params = count_parameters(build_network(spec.arch))
    n = num_scales or spec.arch.num_scales
    return ModelSummary(spec, params, _flops(spec, n), n, f"preset {spec.preset}")
