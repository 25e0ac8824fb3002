"""Weight averaging: the uniform mean of several model files of one architecture.

Snapshots taken late in a run (after the learning rate has decayed), or the ends of several
runs continued from one model, lie in one basin; their mean (stochastic weight averaging,
Izmailov et al. 2018; a "uniform model soup", Wortsman et al. 2022) is usually at least as good
as the best of them and costs no training. Whether it is better is for validation to say:
`benchmarks/average_weights.py` scores the inputs and their mean on a run's held-out images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import replace

import torch

from scn_deploy.arch.scn import SCN, build_network
from scn_deploy.errors import ModelFileError
from scn_deploy.modelfile import ModelSpec, load_state


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise float32 mean of state dicts with the same keys and shapes."""
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for i, state in enumerate(states[1:], start=1):
        if set(state) != keys:
            raise ModelFileError(f"input {i} has other tensors than input 0")
    mean: dict[str, torch.Tensor] = {}
    for key in states[0]:
        shapes = {tuple(s[key].shape) for s in states}
        if len(shapes) != 1:
            raise ModelFileError(f"{key}: shapes differ between inputs ({sorted(shapes)})")
        mean[key] = torch.stack([s[key].to(torch.float32) for s in states]).mean(dim=0)
    return mean


def _job(spec: ModelSpec) -> ModelSpec:
    """The spec without what may differ between averageable files (training, version)."""
    return replace(spec, training={}, version="")


def average_model_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[SCN, ModelSpec]:
    """(network in eval mode, spec) whose weights are the mean of the files' weights.

    Every file must describe the same architecture and job (task, scale, channels, levels);
    the spec is the last file's, its training summary extended with `averaged_from` (the
    files' own training summaries, in order)."""
    loaded = [load_state(p) for p in paths]
    if not loaded:
        raise ValueError("nothing to average")
    first = _job(loaded[0][1])
    for path, (_, spec) in zip(paths, loaded, strict=True):
        if _job(spec) != first:
            raise ModelFileError(f"{path}: another architecture or job than {paths[0]}")
    spec = deepcopy(loaded[-1][1])
    spec.training = dict(spec.training or {})
    spec.training["averaged_from"] = [dict(s.training or {}) for _, s in loaded]
    model = build_network(spec.arch)
    model.load_state_dict(average_states([state for state, _ in loaded]), strict=True)
    return model.eval(), spec
