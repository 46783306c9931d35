"""Checks of `ros2 launch` arguments, so a bad one ends the launch with one clear line.

Light on purpose (no torch, no rclpy): the launch files import it before any node starts. A
node would refuse the same values, but only after loading torch, and with a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from imgcomp.defaults import CLASSICAL_LEVELS, CLASSICAL_MODELS

MANIFEST = Path(__file__).resolve().parent / "weights" / "manifest.json"
DEVICES = ("cpu", "cuda")
MAX_KEYFRAME_INTERVAL = 10_000  # imgcomp.stream.params' range


class LaunchArgumentError(ValueError):
    """A launch argument that the nodes would refuse."""


def _levels() -> dict[str, int]:
    """Levels of every model a node accepts: the shipped weights and the classical codecs."""
    shipped = {name: int(entry.get("levels", 1)) for name, entry in json.loads(MANIFEST.read_text()).items()}
    return shipped | dict.fromkeys(CLASSICAL_MODELS, CLASSICAL_LEVELS)


def check_model(model: str) -> str:
    known = _levels()
    if model not in known:
        raise LaunchArgumentError(
            f"model:={model!r} is not a shipped model or a classical codec; known: {', '.join(sorted(known))}"
        )
    return model


def check_quality(text: str, model: str | None) -> int:
    """`quality:=` as an integer in 1..levels of `model` (None: the most levels any model has)."""
    levels = _levels()
    top = levels[check_model(model)] if model else max(levels.values())
    if not text.strip().isdigit() or not 1 <= int(text) <= top:
        where = f"model {model!r}" if model else "the shipped models"
        raise LaunchArgumentError(f"quality:={text!r} must be an integer in 1..{top} ({where})")
    return int(text)


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise LaunchArgumentError(f"device:={device!r} must be one of {', '.join(DEVICES)}")
    return device


def check_keyframe_interval(text: str) -> int:
    """`keyframe_interval:=` as an integer in 0..10000 (0: key frames only)."""
    if not text.strip().isdigit() or not 0 <= int(text) <= MAX_KEYFRAME_INTERVAL:
        raise LaunchArgumentError(
            f"keyframe_interval:={text!r} must be an integer in 0..{MAX_KEYFRAME_INTERVAL} (0: key frames only)"
        )
    return int(text)
