from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imgcomp.data.crops import image_paths, read_rgb

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"
REPO = Path(__file__).resolve().parent.parent
STREAM_H, STREAM_W = 48, 64  # the size of `photo`, the stream tests' frame


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


# --------------------------------------------------------------- the imgcomp.stream tests'
@pytest.fixture(scope="module")
def one_torch_thread():
    """Two torch threads on a busy two-core machine are many times slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codecs(hyperprior_codec, factorized_codec):
    return {"hyperprior-mse": hyperprior_codec, "factorized-mse": factorized_codec}


@pytest.fixture(scope="module")
def factory(codecs):
    """The real, already loaded codecs (loading one takes seconds); unknown names fail like
    `Codec(name)` does."""
    calls: list[str] = []

    def make(name: str):
        calls.append(name)
        if name not in codecs:
            from imgcomp.codec import Codec

            return Codec(name)  # raises WeightsError for names the registry lacks
        return codecs[name]

    make.calls = calls  # type: ignore[attr-defined]
    return make


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 64x48 crop of a real photo (RGB)."""
    import cv2

    bgr = cv2.imread(str(FIXTURES / "fruits.png"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.resize(bgr, (STREAM_W, STREAM_H), interpolation=cv2.INTER_AREA)[:, :, ::-1])


@pytest.fixture
def encoder(factory):
    from imgcomp.stream import EncoderCore

    return EncoderCore(factory, model="hyperprior-mse", quality=6)


@pytest.fixture
def decoder(factory):
    from imgcomp.stream import DecoderCore

    return DecoderCore(factory, model="hyperprior-mse")

