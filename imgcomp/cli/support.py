"""What every `imgcomp` command shares: one line on stderr and a non-zero exit per bad input.

* `Parser`: argparse with one-line errors (`imgcomp bag compress: error: ... (see --help)`)
  instead of the usage block;
* `device_arg`: an argparse type for `--device` (cpu, cuda, cuda:N) that also says at once
  when torch sees no such GPU; `keyframe_interval_arg`: one for `--keyframe-interval`;
* `run_command`: runs a command; user errors (missing or existing files, bad values, damaged
  bags, unknown models, Ctrl-C) become one line and exit status 1 (130 for Ctrl-C). Set
  IMGCOMP_TRACEBACK=1 to get the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, NoReturn

__all__ = ["Parser", "device_arg", "effort_arg", "keyframe_interval_arg", "run_command", "user_error_types"]

_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def device_arg(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not cpu, cuda or cuda:N")
    if value.startswith("cuda"):
        import torch  # only for a GPU device: every other command line stays free of torch

        index = int(value.split(":")[1]) if ":" in value else 0
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{value}: torch sees no CUDA GPU on this machine")
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{value}: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return value


def effort_arg(value: str) -> int:
    """An argparse type for `--effort`: an integer in 0..MAX_EFFORT."""
    from imgcomp.defaults import check_effort

    try:
        return check_effort(int(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc) if value.strip().lstrip("-").isdigit() else f"{value!r} is not an integer") from None


def keyframe_interval_arg(value: str) -> int:
    """0 (key frames only) .. 10000, like the encoder node's `keyframe_interval` parameter."""
    if not value.strip().isdigit() or int(value) > 10_000:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer in 0..10000 (0: key frames only)")
    return int(value)


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that report a bad input, not a bug. Classes of modules not imported yet
    cannot have been raised, so they are looked up only if loaded (importing them would pull
    in torch)."""
    types: list[type[BaseException]] = [OSError, ValueError]
    for module, name in (
        ("imgcomp.models.registry", "WeightsError"),
        ("rosbags.rosbag2.errors", "ReaderError"),
        ("rosbags.rosbag2.errors", "WriterError"),
        ("yaml", "YAMLError"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            types.append(cls)
    return tuple(types)


def _line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None and str(exc).startswith("[Errno"):
        return f"{exc.filename}: {exc.strerror}"  # "missing.yaml: No such file or directory"
    return " ".join(str(exc).split()) or type(exc).__name__


def run_command(prog: str, action: Callable[[], Any]) -> int:
    """`action()`'s exit status; a user error is one line `<prog>: error: ...` and status 1."""
    try:
        return int(action() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("IMGCOMP_TRACEBACK") or not isinstance(exc, user_error_types()):
            raise
        print(f"{prog}: error: {_line(exc)}", file=sys.stderr)
        return 1
