"""Inference engines: one interface (`Engine`), a registry that picks and loads a backend
(`scn_deploy.engines.registry`), one module per backend with its heavy imports inside."""

from scn_deploy.engines.base import Engine
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import load_engine

__all__ = ["Engine", "EngineOptions", "load_engine"]
