"""imgcomp: learned image compression for ROS 2 camera pipelines (core library, no ROS)."""

from __future__ import annotations

from typing import Any

from imgcomp.bitstream import BitstreamError, ModelMismatchError

__all__ = ["BitstreamError", "Codec", "ModelMismatchError"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Codec pulls in torch and CompressAI; load it on first use so light modules stay light.
    if name == "Codec":
        from imgcomp.codec import Codec

        return Codec
    raise AttributeError(f"module 'imgcomp' has no attribute {name!r}")
