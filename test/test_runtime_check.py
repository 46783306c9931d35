"""The start-up check (`imgcomp.runtime_check`, `imgcomp_ros/startup.py`): one line per problem,
the ranges of the requirements files, and the nodes' exit on an install that cannot run them."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from imgcomp import runtime_check
from imgcomp.runtime_check import exit_on_problems, problems, release

pytestmark = pytest.mark.robot  # on the robot's install path too (.ci/robot.sh, docs/robot.md)

REPO = Path(__file__).resolve().parent.parent
NODES = {  # module -> (class, name it gives rclpy, parameter specs)
    "imgcomp_encoder/node.py": ("EncoderNode", "imgcomp_encoder", "ENCODER_PARAMS"),
    "imgcomp_decoder/node.py": ("DecoderNode", "imgcomp_decoder", "DECODER_PARAMS"),
    "imgcomp_decoder/multitask_node.py": ("MultiTaskNode", "imgcomp_multitask", "MULTITASK_PARAMS"),
}


def _pin(path: str, name: str) -> Requirement:
    for line in (REPO / path).read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")) and Requirement(line).name == name:
            return Requirement(line)
    raise AssertionError(f"{name} is not in {path}")


def test_ranges_are_the_requirements_files() -> None:
    for name, (low, too_new) in (("torch", runtime_check.TORCH_RANGE),
                                 ("torchvision", runtime_check.TORCHVISION_RANGE)):
        assert str(_pin("requirements-robot.txt", name).specifier) == str(
            Requirement(f"{name}<{too_new},>={low}").specifier
        )
    assert str(_pin("requirements-compressai.txt", "compressai").specifier) == f"=={runtime_check.COMPRESSAI_VERSION}"
    assert str(_pin("requirements-robot.txt", "numpy").specifier).startswith("==1.")


@pytest.mark.parametrize("version,expected", [
    ("2.5.0a0+872d972e41.nv24.08", (2, 5, 0)),  # NVIDIA's JetPack 6.1 wheel
    ("2.14.1+cu130", (2, 14, 1)),
    ("0.20.0a0+afc54f7", (0, 20, 0)),
    ("1.2.8", (1, 2, 8)),
    ("unknown", ()),
])
def test_release(version: str, expected: tuple[int, ...]) -> None:
    assert release(version) == expected


def test_this_install_can_run_the_nodes_on_the_cpu() -> None:
    assert problems() == []
    assert problems("cpu", "onnxruntime") == []


def test_missing_torch_is_one_line_and_nothing_else(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ModuleNotFoundError
    found = problems(device="cuda", backend="tensorrt")
    assert found[0].startswith("torch is not installed: on a Jetson install NVIDIA's JetPack torch wheel")
    assert not any("CompressAI" in line or "cuda" in line for line in found)


def test_torch_out_of_range(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch, "__version__", "2.3.0")
    assert [line for line in problems() if line.startswith("torch ")] == [
        "torch 2.3.0 is too old: imgcomp needs torch >= 2.5, < 3 (docs/robot.md)"
    ]
    monkeypatch.setattr(torch, "__version__", "3.0.0")
    assert any(line.startswith("torch 3.0.0 is too new") for line in problems())
    monkeypatch.setattr(torch, "__version__", "2.5.0a0+872d972e41.nv24.08")
    assert problems() == []


def test_a_torchvision_of_another_torch(monkeypatch) -> None:
    def broken(name: str, _real=runtime_check.importlib.import_module):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return _real(name)

    monkeypatch.setattr(runtime_check.importlib, "import_module", broken)
    (line,) = problems()
    assert line.startswith("torchvision does not import beside torch ")
    assert "RuntimeError: operator torchvision::nms does not exist" in line


def test_numpy_2_is_too_new(monkeypatch) -> None:
    import numpy

    monkeypatch.setattr(numpy, "__version__", "2.1.0")
    assert problems() == ["numpy 2.1.0 is too new: CompressAI 1.2.8 needs numpy < 2 (pip install -r requirements-robot.txt)"]


@pytest.mark.parametrize("module,expected", [
    ("compressai", "CompressAI is not installed: pip install --no-build-isolation --no-deps --no-binary compressai"),
    ("compressai.ans", "CompressAI's rANS entropy coder compressai.ans is missing or does not load"),
    ("compressai._CXX", "CompressAI's C++ extension compressai._CXX is missing or does not load"),
])
def test_missing_entropy_coder(monkeypatch, module: str, expected: str) -> None:
    import compressai  # noqa: F401 - loaded, so that only `module` goes missing

    monkeypatch.setitem(sys.modules, module, None)
    (line,) = problems()
    assert line.startswith(expected)
    assert "-r requirements-compressai.txt" in line


def test_another_compressai_release(monkeypatch) -> None:
    import compressai

    monkeypatch.setattr(compressai, "__version__", "1.2.6")
    assert problems() == ["CompressAI 1.2.6 is installed, imgcomp's bitstreams need 1.2.8: pip install "
                          "--no-build-isolation --no-deps --no-binary compressai -r requirements-compressai.txt"]


def test_cuda_asked_for(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    assert problems(device="cuda") == [
        f"device=cuda, but torch {torch.__version__} is a CPU-only build: install NVIDIA's JetPack torch wheel "
        "(docs/robot.md), or set device: cpu"
    ]
    monkeypatch.setattr(torch.version, "cuda", "12.6")
    assert problems(device="cuda") == [
        f"device=cuda, but torch {torch.__version__} (CUDA 12.6) sees no CUDA device: set device: cpu"
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert problems(device="cuda") == []


def test_tensorrt_and_onnxruntime_asked_for(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (line,) = problems(backend="tensorrt")
    assert line.startswith("backend=tensorrt, but the tensorrt Python package is not installed (JetPack ships it")
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert problems(backend="tensorrt") == ["backend=tensorrt needs a CUDA device, and torch sees none: set backend: torch"]
    assert problems(device="cuda", backend="tensorrt")[0].startswith("device=cuda, but torch")  # said once
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert problems(device="cuda", backend="tensorrt") == []

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert problems(backend="onnxruntime") == [
        "backend=onnxruntime exports ONNX graphs, but onnx is not installed (pip install -r requirements-robot.txt)",
        "backend=onnxruntime, but onnxruntime is not installed (pip install -r requirements-robot.txt), "
        "or set backend: torch",
    ]


def test_exit_on_problems_prints_one_line(capsys) -> None:
    exit_on_problems("encoder_node", [])
    with pytest.raises(SystemExit) as exc:
        exit_on_problems("encoder_node", ["torch is not installed: x", "CompressAI is not installed: y"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err == "encoder_node: cannot start: torch is not installed: x; CompressAI is not installed: y\n"


def test_command_line() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    ok = subprocess.run([sys.executable, "-m", "imgcomp.runtime_check"], capture_output=True, text=True,
                        env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert re.match(r"ok: torch \S+ \(.*\), CompressAI 1\.2\.8 with compressai\._CXX and compressai\.ans", ok.stdout)
    pins = subprocess.run([sys.executable, "-m", "imgcomp.runtime_check", "--constraints"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert pins.returncode == 0, pins.stderr
    assert pins.stdout.split() == [f"{name}=={importlib.metadata.version(name)}" for name in ("torch", "torchvision")]


def test_a_node_module_exits_in_one_line_without_torch() -> None:
    """What `ros2 run imgcomp encoder_node` prints where torch is missing: no traceback."""
    code = ("import sys; sys.modules['torch'] = None; sys.argv[0] = 'encoder_node'; "
            "import imgcomp_ros.startup")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("encoder_node: cannot start: torch is not installed")


class _FakeNode:
    """rclpy.node.Node as the probe uses it; `overrides` are what rclpy read for the node."""

    overrides: dict[str, object] = {}
    made: list[str] = []
    destroyed: list[str] = []

    def __init__(self, name: str, **kwargs) -> None:
        assert kwargs["automatically_declare_parameters_from_overrides"] is True
        self.name = name
        _FakeNode.made.append(name)

    def has_parameter(self, name: str) -> bool:
        return name in self.overrides

    def get_parameter(self, name: str):
        return types.SimpleNamespace(value=self.overrides[name])

    def destroy_node(self) -> None:
        _FakeNode.destroyed.append(self.name)


@pytest.fixture
def fake_rclpy(monkeypatch):
    rclpy_node = types.ModuleType("rclpy.node")
    rclpy_node.Node = _FakeNode
    monkeypatch.setitem(sys.modules, "rclpy", types.ModuleType("rclpy"))
    monkeypatch.setitem(sys.modules, "rclpy.node", rclpy_node)
    _FakeNode.made, _FakeNode.destroyed = [], []
    return _FakeNode


def test_startup_checks_the_parameters_before_the_node(fake_rclpy, monkeypatch, capsys) -> None:
    import torch

    from imgcomp.stream.params import ENCODER_PARAMS, MULTITASK_PARAMS
    from imgcomp_ros import startup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["encoder_node"])
    built = []
    fake_rclpy.overrides = {"device": "cuda", "quality": 3}
    make = startup.checked(lambda: built.append("node") or "node", "imgcomp_encoder", ENCODER_PARAMS)
    with pytest.raises(SystemExit) as exc:
        make()
    assert exc.value.code == 1 and built == []
    assert fake_rclpy.made == fake_rclpy.destroyed == ["imgcomp_encoder"]
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("encoder_node: cannot start: device=cuda, but torch")

    fake_rclpy.overrides = {}  # the defaults: cpu, torch
    assert make() == "node" and built == ["node"]
    fake_rclpy.overrides = {"device": "cpu"}  # the multi-task node has no backend parameter
    assert startup.checked(lambda: "multitask", "imgcomp_multitask", MULTITASK_PARAMS)() == "multitask"


@pytest.mark.parametrize("path", sorted(NODES))
def test_each_node_is_checked_under_its_own_name(path: str) -> None:
    cls, name, specs = NODES[path]
    source = (REPO / path).read_text()
    assert f'super().__init__("{name}"' in source
    assert f'run_node(startup.checked({cls}, "{name}", {specs}), args)' in source
    first_ours = re.search(r"^from imgcomp(_encoder|_decoder|_ros)?[. ].*$", source, flags=re.M).group(0)
    assert first_ours.startswith("from imgcomp_ros import startup"), "the check must come before torch"
