"""The command line runs the real evaluation and benchmark on small real inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from imgcomp.cli.main import main
from imgcomp.eval.rd import RDPoint, bd_rate

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
    assert main(["bench", "--models", "factorized-mse", "--backends", "torch", "tensorrt", "--frames", "2",
                 "--threads", "1", "2", "--out", str(out)]) == 0
    results = json.loads((out / "bench.json").read_text())
    runs = results["resolutions"]["640x480"]
    from imgcomp.inference.tensorrt_backend import tensorrt_unavailable_reason

    if tensorrt_unavailable_reason() is not None:  # a backend this machine cannot run is a line, not an abort
        assert results["skipped"] == {"factorized-mse [tensorrt]": tensorrt_unavailable_reason()}
        assert "not run here: factorized-mse [tensorrt]" in (out / "bench.md").read_text()
    assert sorted(runs) == ["1", "2"]  # every row at each thread count
    for rows in runs.values():
        ours = rows["factorized-mse q3"]
        assert ours["encode_ms"]["p50"] > 0 and math.isfinite(ours["analysis_speedup_vs_reference"])
        assert ours["end_to_end_ms"]["p50"] >= ours["encode_ms"]["p50"] * 0.5
        assert ours["entropy"]["decode_ms"]["p50"] < ours["decode_ms"]["p50"]
        assert "CompressAI bmshj2018-factorized (N=128, M=192)" in rows
        assert ours["encode_time_vs_jpeg"] > 1 and ours["decode_speedup_vs_reference"] > 0
    assert "640x480, 2 threads" in (out / "bench.md").read_text()


def _one_error_line(capsys, prefix: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err and lines[0].startswith(prefix), err
    return lines[0]


def test_bad_arguments_are_one_line_and_a_non_zero_exit(tmp_path, capsys):
    """An unknown model, a missing file, a bad device: one line on stderr, no traceback."""
    from imgcomp.rosbag.io import open_writer
    from imgcomp.rosbag.messages import IMAGE_TYPE, make_image_msg

    bag = tmp_path / "bag"
    with open_writer(bag) as writer:
        writer.write("/camera/image_raw", IMAGE_TYPE, 1, make_image_msg(1, "cam", _small_crop(), "rgb8"))
    out = tmp_path / "out"
    assert main(["bag", "compress", str(bag), str(out), "--model", "nope", "--no-progress"]) == 1
    assert "unknown model 'nope'" in _one_error_line(capsys, "imgcomp bag: error: ")
    assert not out.exists() and not (tmp_path / "out.partial").exists()

    assert main(["export", "--model", "nope", "--out", str(tmp_path / "x")]) == 1
    assert "unknown model 'nope'" in _one_error_line(capsys, "imgcomp export: error: ")
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in _one_error_line(capsys, "imgcomp train: error: ")

    for argv in (["bag", "compress", str(bag), str(out), "--device", "gpu"],
                 ["bench", "--device", "cuda:99"], ["bag", "compress", str(bag)]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        _one_error_line(capsys, "imgcomp")


def _small_crop():
    from imgcomp.data.crops import read_rgb

    return read_rgb(FIXTURES / "baboon.png")[:16, :24].copy()
