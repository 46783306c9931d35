"""Where exported graphs and engines are kept between runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_root() -> Path:
    """`$IMGCOMP_CACHE`, else `$XDG_CACHE_HOME/imgcomp`, else `~/.cache/imgcomp`."""
    if os.environ.get("IMGCOMP_CACHE"):
        return Path(os.environ["IMGCOMP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imgcomp"


def model_cache_dir(kind: str, model: str, model_hash: str) -> Path:
    """One folder per model and weights: new weights never pick up stale graphs."""
    return cache_root() / kind / f"{model}-{model_hash[:16]}"


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and move its result to `target` atomically, unless `target` exists.

    An encoder and a decoder started together may both build; the first rename wins and the
    other's copy is discarded, so no process ever reads a half-written file."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
