import os

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled models and the runtime object are cached per test session, not in the user's cache."""
    os.environ["AIC_CACHE_DIR"] = str(tmp_path_factory.mktemp("aic-cache"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
