"""Training: configuration, in-memory data with per-step batches, initialisation, validation
and the loop."""

from scn_deploy.train.config import TrainConfig
from scn_deploy.train.loop import Trainer, TrainResult

__all__ = ["TrainConfig", "TrainResult", "Trainer"]
