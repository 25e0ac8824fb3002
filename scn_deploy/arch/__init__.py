"""The SCN network, its configuration dataclasses and named presets."""

from scn_deploy.arch.config import ModelSpec, SCNConfig
from scn_deploy.arch.presets import PRESETS, preset_config, preset_spec

__all__ = ["PRESETS", "ModelSpec", "SCNConfig", "preset_config", "preset_spec"]
