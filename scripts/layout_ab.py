"""A/B of the memory layout TorchTransforms runs g_a and g_s in on the CPU: NCHW against
channels-last (NHWC), same weights, same 640x480 frame, interleaved repeats, one process.

    python scripts/layout_ab.py --threads 1 2 --repeats 15 --out benchmarks/results/bench/cpu-quiet-amx/layout_ab.md
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from imgcomp.models.registry import load_model


def _time(function, argument: torch.Tensor) -> float:
    start = time.perf_counter()
    function(argument)
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hyperprior-mse")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    net, _ = load_model(args.model)
    net = net.eval()
    nhwc = copy.deepcopy(net)
    nhwc.g_a.to(memory_format=torch.channels_last)
    nhwc.g_s.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 480, 640, generator=torch.Generator().manual_seed(0))
    x_last = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y = net.g_a(x)
    y_last = y.contiguous(memory_format=torch.channels_last)

    rows = []
    with torch.no_grad():
        diff_a = (net.g_a(x) - nhwc.g_a(x_last)).abs().max().item()
        diff_s = (net.g_s(y) - nhwc.g_s(y_last)).abs().max().item()
        for threads in args.threads:
            torch.set_num_threads(threads)
            times: dict[str, list[float]] = {key: [] for key in ("g_a nchw", "g_a nhwc", "g_s nchw", "g_s nhwc")}
            for _ in range(2):  # warm-up (oneDNN primitive creation)
                net.g_a(x), nhwc.g_a(x_last), net.g_s(y), nhwc.g_s(y_last)
            for _ in range(args.repeats):
                times["g_a nchw"].append(_time(net.g_a, x))
                times["g_a nhwc"].append(_time(nhwc.g_a, x_last))
                times["g_s nchw"].append(_time(net.g_s, y))
                times["g_s nhwc"].append(_time(nhwc.g_s, y_last))
            p50 = {key: statistics.median(values) for key, values in times.items()}
            rows.append(
                f"| {threads} | {p50['g_a nchw']:.1f} | {p50['g_a nhwc']:.1f} | {p50['g_a nchw'] / p50['g_a nhwc']:.2f}x "
                f"| {p50['g_s nchw']:.1f} | {p50['g_s nhwc']:.1f} | {p50['g_s nchw'] / p50['g_s nhwc']:.2f}x |"
            )
    lines = [
        f"### g_a / g_s of `{args.model}` at 640x480, NCHW vs channels-last (torch {torch.__version__}, "
        f"p50 of {args.repeats} interleaved repeats, ms)",
        "",
        "| threads | g_a NCHW | g_a NHWC | g_a speed-up | g_s NCHW | g_s NHWC | g_s speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Largest difference between the layouts: latent {diff_a:.2e}, pixels (0..1) {diff_s:.2e}.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
