"""`imgcomp.stream.backend`: backend and device fallbacks, CPU threads; the package never imports rclpy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from imgcomp.stream import (
    resolve_backend,
    resolve_device,
)


# one torch thread: many times faster on two busy cores; on the robot's install path too (.ci/robot.sh)
pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]


def test_backend_and_device_fallbacks() -> None:
    assert resolve_backend("torch").used == "torch" and not resolve_backend("torch").fell_back
    assert resolve_backend("onnxruntime").used == "onnxruntime"
    choice = resolve_backend("tensorrt")
    if not torch.cuda.is_available():
        assert choice.used == "onnxruntime" and choice.fell_back
        assert "backend 'tensorrt' requested, using 'onnxruntime'" in choice.log_line("backend")
    with pytest.raises(ValueError):
        resolve_backend("openvino-fp8")
    # openvino falls back to onnxruntime where the package is missing, keeping INT8 if asked
    openvino = resolve_backend("openvino-int8")
    assert openvino.used in ("openvino-int8", "onnxruntime-int8")
    assert openvino.fell_back == (importlib.util.find_spec("openvino") is None)
    device = resolve_device("cuda")
    assert device.used == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").used == "cpu"


def test_core_never_imports_rclpy() -> None:
    import subprocess
    import sys

    code = "import sys, imgcomp.stream; assert 'rclpy' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent).returncode == 0


def test_set_cpu_threads() -> None:
    from imgcomp.stream import set_cpu_threads

    before = torch.get_num_threads()
    try:
        from imgcomp.classical import set_threads, threads

        set_threads(2)
        assert set_cpu_threads(1) == "torch CPU threads: 1 (threads=1)"
        assert torch.get_num_threads() == 1 and threads() == 1
        assert "torch's default" in set_cpu_threads(0) and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            set_cpu_threads(-1)
    finally:
        torch.set_num_threads(before)

