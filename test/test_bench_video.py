"""bench-video's shared work (analysis once per frame, key frames once per frame and level,
synthesis once per distinct decoded latent) must not change a single number."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from imgcomp.codec import Codec
from imgcomp.eval.video import _variants, our_rows
from imgcomp.video import read_video

VTEST = Path("data/video/vtest.avi")


@pytest.mark.skipif(not VTEST.exists(), reason="data/video/vtest.avi missing (make data)")
def test_shared_work_gives_identical_rows():
    frames, _ = read_video(VTEST, 6)
    frames = [cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in frames]
    codec = Codec("hyperprior-mse")
    configs = _variants([1, 3, 10], [], [1.0])
    idx = list(range(0, len(frames), 2))
    shared, shared_curves = our_rows(codec, frames, [1, 4], configs, idx, shared=True)
    plain, plain_curves = our_rows(codec, frames, [1, 4], configs, idx, shared=False)
    assert [r["codec"] for r in shared] == [r["codec"] for r in plain]
    assert shared == plain  # rates, qualities, key frames, container bytes: all bit-identical
    assert shared_curves == plain_curves
    # the sharing is exercised: P-frames were coded, and key frames appear in several configurations
    assert any(r["keyframes"] < len(frames) for r in shared)
    assert sum(r["keyframes"] for r in shared if r["level"] == 1) > len(frames)
