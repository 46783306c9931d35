"""The command line runs the real evaluation and benchmark on small real inputs."""

from __future__ import annotations

import json
import math

import pytest

from imgcomp.cli import main
from imgcomp.evaluate import RDPoint, bd_rate

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"


def _curve(name: str, rates: list[float], psnrs: list[float]) -> list[RDPoint]:
    return [RDPoint(name, i, r, p, 1 - 10 ** (-p / 20)) for i, (r, p) in enumerate(zip(rates, psnrs))]


def test_bd_rate_of_a_curve_needing_half_the_bits_is_minus_fifty_percent():
    anchor = _curve("a", [0.2, 0.4, 0.8, 1.6], [28, 31, 34, 37])
    test = _curve("b", [0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37])
    assert bd_rate(anchor, test, "psnr") == pytest.approx(-50.0, abs=0.5)
    assert bd_rate(anchor, anchor, "psnr") == pytest.approx(0.0, abs=1e-6)


def test_bd_rate_is_none_without_overlap():
    anchor = _curve("a", [0.2, 0.4, 0.8, 1.6], [20, 21, 22, 23])
    test = _curve("b", [0.2, 0.4, 0.8, 1.6], [40, 41, 42, 43])
    assert bd_rate(anchor, test, "psnr") is None


@pytest.mark.slow
def test_eval_command_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--images", str(FIXTURES), "--out", str(out), "--models", "factorized-mse",
                 "--classical", "jpeg", "--max-images", "2"]) == 0
    result = json.loads((out / "rd.json").read_text())
    assert set(result["curves"]) == {"factorized-mse", "JPEG (OpenCV 4:2:0)"}
    assert len(result["curves"]["factorized-mse"]) == 6
    assert len(result["per_image"]) == 2 * (6 + 10)
    rates = [p["bpp"] for p in result["curves"]["JPEG (OpenCV 4:2:0)"]]
    assert rates == sorted(rates)  # JPEG quality up, bits up
    assert (out / "rd.png").stat().st_size > 0
    assert "BD-rate" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_command_measures_against_the_reference(tmp_path):
    out = tmp_path / "bench"
    assert main(["bench", "--models", "factorized-mse", "--frames", "2", "--out", str(out)]) == 0
    rows = json.loads((out / "bench.json").read_text())["resolutions"]["640x480"]
    ours = rows["factorized-mse q3"]
    assert ours["encode_ms"]["p50"] > 0 and math.isfinite(ours["analysis_speedup_vs_reference"])
    assert ours["end_to_end_ms"]["p50"] >= ours["encode_ms"]["p50"] * 0.5
    assert "CompressAI bmshj2018-factorized (N=128, M=192)" in rows
