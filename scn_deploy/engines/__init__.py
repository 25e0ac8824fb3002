"""Inference engines: one interface (`Engine`), one module per backend, heavy imports inside."""

from scn_deploy.engines.base import Engine, load_engine

__all__ = ["Engine", "load_engine"]
