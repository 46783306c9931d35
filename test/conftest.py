from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgcomp.data.crops import image_paths, read_rgb

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"
REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds; run with -m slow or without -m")


@pytest.fixture(scope="session")
def real_images() -> dict[str, np.ndarray]:
    """Small crops of real photos and a vtest.avi frame, committed under test/fixtures."""
    return {p.stem: read_rgb(p) for p in image_paths(FIXTURES)}


@pytest.fixture(scope="session")
def hyperprior_codec():
    from imgcomp.codec import Codec

    return Codec("hyperprior-mse")


@pytest.fixture(scope="session")
def factorized_codec():
    from imgcomp.codec import Codec

    return Codec("factorized-mse")
