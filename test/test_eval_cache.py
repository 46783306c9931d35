"""`imgcomp eval --cache`: a sweep measured once on the same pixels with the same codec is read
back, and any change to the pixels, settings or codec identity measures it again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from imgcomp.data.crops import read_rgb
from imgcomp.eval.baselines import JPEG
from imgcomp.eval.rd import cached_sweep, classical_sweep

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"


def test_a_cached_sweep_is_read_back_and_a_changed_one_measured_again(tmp_path):
    images = {name: read_rgb(FIXTURES / f"{name}.png") for name in ("fruits", "vtest_frame0")}  # MS-SSIM defined
    calls = []

    def encode(image, quality):
        calls.append(quality)
        return JPEG.encode(image, quality)

    sweep = replace(classical_sweep(JPEG), settings=[30, 70], encode=encode)
    first = cached_sweep(sweep, images, tmp_path)
    assert len(calls) == 4 and first[0][0].bpp < first[0][1].bpp
    assert cached_sweep(sweep, images, tmp_path) == first and len(calls) == 4  # read back
    cached_sweep(replace(sweep, identity="another libjpeg"), images, tmp_path)
    assert len(calls) == 8
    darker = {k: v // 2 for k, v in images.items()}
    cached_sweep(sweep, darker, tmp_path)
    assert len(calls) == 12 and len(list(tmp_path.glob("*.json"))) == 3
