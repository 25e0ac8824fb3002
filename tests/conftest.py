"""Shared test fixtures: small deterministic images and models. No test needs ../shared data."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """On-the-fly exports and compiled engines go to a temporary cache, not the user's."""
    old = os.environ.get("SCN_CACHE")
    os.environ["SCN_CACHE"] = str(tmp_path_factory.mktemp("scn-cache"))
    yield
    if old is None:
        os.environ.pop("SCN_CACHE", None)
    else:
        os.environ["SCN_CACHE"] = old


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def photo_rgb() -> np.ndarray:
    """A real photograph shipped by scikit-image (512x512 RGB uint8)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def zoo_engine():
    """`zoo_engine(name)`: a zoo model as shipped, through its ONNX export in `export/` on
    ONNX Runtime in fp32 (what an install without torch runs), loaded once per session."""
    from scn_deploy.engines import EngineOptions, load_engine
    from scn_deploy.zoo import zoo_path

    loaded: dict[str, object] = {}

    def get(name: str):
        if name not in loaded:
            options = EngineOptions(engine="onnx", device="cpu", precision="fp32")
            loaded[name] = load_engine(zoo_path(name), options)
        return loaded[name]

    return get
