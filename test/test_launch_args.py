"""Launch arguments are checked before any node starts (`imgcomp.launch_args`), and resources
are found from an installed package, not only from a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imgcomp.launch_args import LaunchArgumentError, check_device, check_keyframe_interval, check_model, check_quality
from imgcomp.stream.params import ENCODER_PARAMS
from imgcomp.multitask.scenes import textures
from launch_ast import called_in, calls, literal, parse, strings_or_names


@pytest.mark.parametrize("text", ["0", "7", "-1", "3.5", "", "x", "True"])
def test_bad_quality_is_one_clear_error(text: str) -> None:
    with pytest.raises(LaunchArgumentError, match=r"quality:=.* must be an integer in 1\.\.6"):
        check_quality(text, "hyperprior-mse")


def test_quality_range_follows_the_model() -> None:
    assert check_quality("6", "hyperprior-mse") == 6
    assert check_quality("1", "cae8-ssim") == 1
    with pytest.raises(LaunchArgumentError, match=r"1\.\.1"):
        check_quality("2", "cae8-ssim")
    assert check_quality("6", None) == 6


@pytest.mark.parametrize("codec", ["avif", "jxl", "webp", "jpeg"])
def test_classical_codecs_are_launch_models_with_six_levels(codec: str) -> None:
    """`ros2 launch imgcomp loopback.launch.py model:=avif` (a CPU-only robot's choice) used to
    end the launch: only the shipped weights were known."""
    assert check_model(codec) == codec
    assert check_quality("6", codec) == 6
    with pytest.raises(LaunchArgumentError, match=r"1\.\.6"):
        check_quality("7", codec)


def test_unknown_model_and_device_are_refused() -> None:
    with pytest.raises(LaunchArgumentError, match="model:='nope' is not a shipped model or a classical codec; known: .*avif.*hyperprior-mse"):
        check_model("nope")
    with pytest.raises(LaunchArgumentError, match="device:='gpu'"):
        check_device("gpu")
    assert check_device("cuda") == "cuda"


@pytest.mark.parametrize("text", ["-1", "10001", "2.5", "x", " "])
def test_bad_keyframe_interval_is_one_clear_error(text: str) -> None:
    with pytest.raises(LaunchArgumentError, match=r"keyframe_interval:=.* must be an integer in 0\.\.10000"):
        check_keyframe_interval(text)


def test_keyframe_interval_range_is_the_parameter_range() -> None:
    spec = next(s for s in ENCODER_PARAMS if s.name == "keyframe_interval")
    assert (spec.low, spec.high) == (0, 10000)
    assert check_keyframe_interval("0") == 0 and check_keyframe_interval("10000") == 10000


def test_the_launch_files_check_their_arguments() -> None:
    launch = Path(__file__).resolve().parent.parent / "launch"
    assert {"check_model", "check_device", "check_quality", "check_keyframe_interval"} <= called_in("_encoder", launch / "jetson_encode.launch.py")
    assert "check_model" in strings_or_names(launch / "host_decode.launch.py")
    # Each include in its own scope, so jetson_encode's params_file never reaches the decoder.
    groups = calls(parse(launch / "loopback.launch.py"), "GroupAction")
    assert len(groups) == 2 and all(literal(group, "scoped") is True for group in groups)
    assert all(len(calls(group, "IncludeLaunchDescription")) == 1 for group in groups)


def test_textures_are_found_from_the_environment_and_the_working_folder(tmp_path, monkeypatch) -> None:
    fixture = next((Path(__file__).resolve().parent / "fixtures" / "images").glob("*.png"))
    train = tmp_path / "somewhere" / "images" / "train"
    train.mkdir(parents=True)
    shutil.copy(fixture, train / fixture.name)
    monkeypatch.setenv("IMGCOMP_DATA", str(tmp_path / "somewhere"))
    assert textures.default_texture_folder() == train
    monkeypatch.delenv("IMGCOMP_DATA")
    monkeypatch.chdir(tmp_path / "somewhere" / "..")
    (tmp_path / "data").mkdir()
    shutil.copytree(tmp_path / "somewhere" / "images", tmp_path / "data" / "images")
    assert textures.default_texture_folder() == tmp_path / "data" / "images" / "train"
