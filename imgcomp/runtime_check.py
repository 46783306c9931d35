"""Can this install run the imgcomp nodes? A list of problems, one line each, not a traceback.

Importable without torch, CompressAI or ROS: each check imports what it checks. The nodes run
`problems()` before they import anything heavy (`imgcomp_ros/startup.py`), and again with the
device and backend their parameters ask for. From a shell (docs/robot.md)::

    python -m imgcomp.runtime_check [--device cuda] [--backend tensorrt]
    python -m imgcomp.runtime_check --constraints   # the installed torch/torchvision, for pip -c

The ranges here are the ones in requirements-robot.txt and requirements-compressai.txt
(test/test_runtime_check.py keeps them equal).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import re
import sys
import warnings
from types import ModuleType

from imgcomp.defaults import BACKENDS

__all__ = [
    "COMPRESSAI_VERSION", "TORCH_RANGE", "TORCHVISION_RANGE", "exit_on_problems", "main",
    "one_line", "platform_constraints", "problems", "release",
]

# (lowest, first too new): requirements-robot.txt says torch>=2.5,<3 and torchvision>=0.20,<1.
TORCH_RANGE = ("2.5", "3")
TORCHVISION_RANGE = ("0.20", "1")
COMPRESSAI_VERSION = "1.2.8"  # requirements-compressai.txt; the rANS bitstreams are tested with it
NUMPY_TOO_NEW = "2"  # CompressAI 1.2.8 needs numpy < 2

STEPS = "docs/robot.md"
INSTALL_ROBOT = "pip install -r requirements-robot.txt"
INSTALL_COMPRESSAI = "pip install --no-build-isolation --no-deps --no-binary compressai -r requirements-compressai.txt"
MAX_DETAIL = 160


def release(version: str) -> tuple[int, ...]:
    """The release numbers at the start of a version: "2.5.0a0+872d972e41.nv24.08" -> (2, 5, 0).

    NVIDIA's JetPack wheels are pre-releases with a local tag; they count as their release."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _range_problem(what: str, version: str, bounds: tuple[str, str], hint: str) -> str | None:
    low, too_new = bounds
    have = release(version)
    if have < release(low):
        return f"{what} {version} is too old: imgcomp needs {what} >= {low}, < {too_new} ({hint})"
    if have >= release(too_new):
        return f"{what} {version} is too new: imgcomp needs {what} >= {low}, < {too_new} ({hint})"
    return None


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _import(name: str) -> tuple[ModuleType | None, BaseException | None]:
    try:
        with warnings.catch_warnings():  # CompressAI's import warns about torch.jit.script on new torch
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
            return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - ImportError, OSError (a missing CUDA library), RuntimeError (a torchvision of another torch)
        return None, exc


def _missing(exc: BaseException | None, name: str) -> bool:
    """True when `exc` says that module `name` itself is not installed (not that it failed to load)."""
    return isinstance(exc, ModuleNotFoundError) and exc.name == name


def _why(exc: BaseException | None, name: str) -> str:
    """"is not installed" or "does not import: <why>", for a module that `_import` could not load."""
    return "is not installed" if _missing(exc, name) else f"does not import: {_detail(exc)}"


def _check_numpy_opencv(found: list[str]) -> None:
    numpy, exc = _import("numpy")
    if numpy is None:
        found.append(f"numpy {_why(exc, 'numpy')} ({INSTALL_ROBOT})")
    elif release(numpy.__version__) >= release(NUMPY_TOO_NEW):
        found.append(f"numpy {numpy.__version__} is too new: CompressAI {COMPRESSAI_VERSION} needs numpy < "
                     f"{NUMPY_TOO_NEW} ({INSTALL_ROBOT})")
    cv2, exc = _import("cv2")
    if cv2 is None:
        found.append(f"OpenCV (cv2) {_why(exc, 'cv2')} ({INSTALL_ROBOT})")


def _check_torch(found: list[str]) -> ModuleType | None:
    """The torch module when it imports and is in range, else None (with the problem added)."""
    torch, exc = _import("torch")
    if torch is None:
        if _missing(exc, "torch"):
            found.append(f"torch is not installed: on a Jetson install NVIDIA's JetPack torch wheel, "
                         f"elsewhere pip install torch ({STEPS})")
        else:
            found.append(f"torch does not import: {_detail(exc)} ({STEPS})")
        return None
    problem = _range_problem("torch", torch.__version__, TORCH_RANGE, STEPS)
    if problem:
        found.append(problem)
    torchvision, exc = _import("torchvision")
    if torchvision is None:
        if _missing(exc, "torchvision"):
            found.append(f"torchvision is not installed: install the build made for torch {torch.__version__} ({STEPS})")
        else:
            found.append(f"torchvision does not import beside torch {torch.__version__}: {_detail(exc)} "
                         f"(install the torchvision built for this torch, {STEPS})")
    else:
        problem = _range_problem("torchvision", torchvision.__version__, TORCHVISION_RANGE, STEPS)
        if problem:
            found.append(problem)
    return torch


def _check_compressai(found: list[str]) -> None:
    compressai, exc = _import("compressai")
    if compressai is None:
        if _missing(exc, "compressai"):
            found.append(f"CompressAI is not installed: {INSTALL_COMPRESSAI} ({STEPS})")
        elif "_CXX" in str(exc):
            found.append(f"CompressAI's C++ extension compressai._CXX is missing or does not load ({_detail(exc)}): "
                         f"build it from the sdist: {INSTALL_COMPRESSAI}")
        else:
            found.append(f"CompressAI does not import: {_detail(exc)} ({INSTALL_ROBOT})")
        return
    version = getattr(compressai, "__version__", "unknown")
    if release(str(version)) != release(COMPRESSAI_VERSION):
        found.append(f"CompressAI {version} is installed, imgcomp's bitstreams need {COMPRESSAI_VERSION}: "
                     f"{INSTALL_COMPRESSAI}")
    for extension, role in (("compressai._CXX", "C++ extension"), ("compressai.ans", "rANS entropy coder")):
        module, exc = _import(extension)
        if module is None:
            found.append(f"CompressAI's {role} {extension} is missing or does not load ({_detail(exc)}): "
                         f"build it from the sdist: {INSTALL_COMPRESSAI}")


def _check_compute(found: list[str], torch: ModuleType | None, device: str, backend: str) -> None:
    cuda_usable = torch is not None and torch.cuda.is_available()
    if device == "cuda" and torch is not None and not cuda_usable:
        if torch.version.cuda is None:
            found.append(f"device=cuda, but torch {torch.__version__} is a CPU-only build: install NVIDIA's "
                         f"JetPack torch wheel ({STEPS}), or set device: cpu")
        else:
            found.append(f"device=cuda, but torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA "
                         f"device: set device: cpu")
    family, int8 = backend.removesuffix("-int8").removesuffix("-bf16"), backend.endswith("-int8")
    if family in ("onnxruntime", "openvino", "tensorrt"):
        onnx, exc = _import("onnx")
        if onnx is None:
            found.append(f"backend={backend} exports ONNX graphs, but onnx {_why(exc, 'onnx')} ({INSTALL_ROBOT})")
    if family == "onnxruntime" or int8:  # INT8 graphs are quantized with onnxruntime's tools
        ort, exc = _import("onnxruntime")
        if ort is None:
            found.append(f"backend={backend}, but onnxruntime {_why(exc, 'onnxruntime')} ({INSTALL_ROBOT}), "
                         "or set backend: torch")
    if family == "openvino":
        ov, exc = _import("openvino")
        if ov is None:
            found.append(f"backend={backend}, but openvino {_why(exc, 'openvino')} ({INSTALL_ROBOT}), "
                         "or set backend: onnxruntime")
    if family == "tensorrt":
        trt, exc = _import("tensorrt")
        if trt is None:
            if _missing(exc, "tensorrt"):
                found.append(f"backend={backend}, but the tensorrt Python package is not installed (JetPack ships it: "
                             f"a venv made with --system-site-packages sees it, {STEPS}; elsewhere pip install "
                             "tensorrt), or set backend: torch")
            else:
                found.append(f"backend={backend}, but tensorrt does not import: {_detail(exc)}")
        elif torch is not None and not cuda_usable and device != "cuda":  # device=cuda said it already
            found.append(f"backend={backend} needs a CUDA device, and torch sees none: set backend: torch")


def problems(device: str = "cpu", backend: str = "torch") -> list[str]:
    """What keeps this install from running a node on `device` with `backend`, one line each.

    Empty when the node can start. Checks numpy and OpenCV, torch and torchvision (installed,
    importable, in range), CompressAI with its C++ extension and rANS coder, and, where asked
    for, CUDA, ONNX Runtime, TensorRT."""
    found: list[str] = []
    _check_numpy_opencv(found)
    torch = _check_torch(found)
    if torch is not None:  # CompressAI imports torch: its own error would only repeat torch's
        _check_compressai(found)
    _check_compute(found, torch, device, backend)
    return found


def one_line(program: str, found: list[str]) -> str:
    return f"{program}: cannot start: " + "; ".join(found)


def exit_on_problems(program: str, found: list[str]) -> None:
    """Print `found` as one line on stderr and exit with status 1; nothing when it is empty."""
    if found:
        print(one_line(program, found), file=sys.stderr, flush=True)
        raise SystemExit(1)


def platform_constraints() -> list[str]:
    """pip constraints that hold the installed torch and torchvision (the platform's builds)."""
    lines = []
    for name in ("torch", "torchvision"):
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return lines


def _summary(device: str, backend: str) -> str:
    import compressai
    import torch

    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA device"
    return (f"ok: torch {torch.__version__} ({cuda}{gpu}), CompressAI {compressai.__version__} with "
            f"compressai._CXX and compressai.ans; device={device}, backend={backend}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgcomp.runtime_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--backend", default="torch", choices=BACKENDS)
    parser.add_argument("--constraints", action="store_true",
                        help="print the installed torch and torchvision as pip constraints and exit")
    args = parser.parse_args(argv)
    if args.constraints:
        lines = platform_constraints()
        if not any(line.startswith("torch==") for line in lines):
            print(one_line(parser.prog, [f"torch is not installed: install the platform's torch first ({STEPS})"]),
                  file=sys.stderr)
            return 1
        print("\n".join(lines))
        return 0
    found = problems(args.device, args.backend)
    if found:
        print(one_line(parser.prog, found), file=sys.stderr)
        return 1
    print(_summary(args.device, args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
