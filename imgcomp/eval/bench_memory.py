"""Peak memory to encode and to decode the largest frame the decoder accepts by default.

Each measurement runs in a fresh spawned process (peak RSS only grows within a process): load the
codec, code a small frame once (lazy allocations, thread pools), read the baseline, then encode
(or decode) one real frame resized to the size, and read the peak again.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

FALLBACK_FRAME = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "images" / "vtest_frame0.png"


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(model: str, width: int, height: int, what: str, payload: bytes | None, threads: int, conn: Any) -> None:
    import time

    import cv2
    import numpy as np
    import torch

    from imgcomp.codec import Codec

    if threads:
        torch.set_num_threads(threads)
    codec = Codec(model, max_output_pixels=max(width * height, 1))
    frame = cv2.resize(cv2.cvtColor(cv2.imread(str(FALLBACK_FRAME)), cv2.COLOR_BGR2RGB), (width, height), interpolation=cv2.INTER_CUBIC)
    codec.decode(codec.encode(np.ascontiguousarray(frame[:64, :64])))
    baseline = _rss_mb()
    start = time.perf_counter()
    if what == "encode":
        payload = codec.encode(frame)
    else:
        codec.decode(payload)
    conn.send({"baseline_mb": baseline, "peak_mb": _rss_mb(), "seconds": time.perf_counter() - start, "payload": payload})


def _in_child(*args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_measure, args=(*args, child))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    return result


def largest_frame_memory(models: list[str], width: int, height: int, threads: int = 1) -> dict[str, Any]:
    """{model: {"encode": {...}, "decode": {...}}} with baseline and peak RSS in MB and seconds."""
    out: dict[str, Any] = {"size": f"{width}x{height}", "threads": threads, "models": {}}
    for model in models:
        enc = _in_child(model, width, height, "encode", None, threads)
        dec = _in_child(model, width, height, "decode", enc.pop("payload"), threads)
        dec.pop("payload")
        out["models"][model] = {"encode": enc, "decode": dec}
    return out


def memory_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"### Largest accepted frame ({result['size']}, the default `max_output_pixels`; {result['threads']} torch thread(s), "
        "fresh process per measurement)",
        "",
        "| model | encode peak RSS (MB) | above baseline | encode s | decode peak RSS (MB) | above baseline | decode s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, r in result["models"].items():
        e, d = r["encode"], r["decode"]
        lines.append(
            f"| {model} | {e['peak_mb']:.0f} | +{e['peak_mb'] - e['baseline_mb']:.0f} | {e['seconds']:.1f} "
            f"| {d['peak_mb']:.0f} | +{d['peak_mb'] - d['baseline_mb']:.0f} | {d['seconds']:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)
