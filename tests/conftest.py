"""Shared test fixtures: small deterministic images and models. No test needs ../shared data."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def photo_rgb() -> np.ndarray:
    """A real photograph shipped by scikit-image (512x512 RGB uint8)."""
    from skimage import data

    return data.astronaut()
