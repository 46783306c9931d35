"""Which CPU kernels the exported graphs run on: ONNX Runtime's per-operator profile (time per
operator type, one 640x480 frame after a warm-up) and OpenVINO's executed graph (the primitive
and precision of every convolution), for the float, bf16 and INT8 backends.

    python scripts/cpu_kernels.py [--threads 1] > benchmarks/results/bench/cpu/kernels.md
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from imgcomp.inference.onnx_backend import float_graphs, int8_graphs
from imgcomp.models.registry import load_model

FEEDS = {
    "analysis": lambda: {"x": np.random.default_rng(0).random((1, 3, 512, 640), dtype=np.float32),
                         "gain": np.ones((1, 128, 1, 1), np.float32)},
    "synthesis": lambda: {"y_hat": np.round(np.random.default_rng(0).normal(0, 3, (1, 128, 32, 40))).astype(np.float32),
                          "inverse_gain": np.ones((1, 128, 1, 1), np.float32)},
}


def ort_profile(path: Path, feeds: dict, threads: int) -> list[tuple[str, float]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feeds)
    trace = session.end_profiling()
    totals: dict[str, float] = collections.defaultdict(float)
    for event in json.loads(Path(trace).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 3e3
    os.remove(trace)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def openvino_primitives(path: Path, precision: str, threads: int) -> list[tuple[str, str, str, int]]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    counts: dict[tuple[str, str, str], int] = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].value if "layerType" in info else op.get_type_name()
        if layer in ("Convolution", "Deconvolution", "GroupConvolution", "Eltwise", "DepthToSpace"):
            counts[(layer, info["primitiveType"].value, info["runtimePrecision"].value)] += 1
    return [(*key, n) for key, n in sorted(counts.items())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    net, model_hash = load_model("hyperprior-mse")
    graphs = {"float": float_graphs(net, "hyperprior-mse", model_hash), "int8": int8_graphs(net, "hyperprior-mse", model_hash)}
    print(f"### Kernels on this CPU ({args.threads} thread(s), one 640x480 frame)\n")
    for kind, (analysis, synthesis) in graphs.items():
        for role, path in (("analysis", analysis), ("synthesis", synthesis)):
            profile = ort_profile(path, FEEDS[role](), args.threads)
            total = sum(ms for _, ms in profile)
            print(f"ONNX Runtime, {kind} {role}: " + ", ".join(f"{op} {ms:.1f} ms" for op, ms in profile[:8]) + f" (total {total:.1f} ms)\n")
    if importlib.util.find_spec("openvino") is None:
        print("OpenVINO: not installed")
        return
    for kind, precision in (("float", "f32"), ("float", "bf16"), ("int8", "f32")):
        for role, path in zip(("analysis", "synthesis"), graphs[kind]):
            rows = openvino_primitives(path, precision, args.threads)
            print(f"OpenVINO, {kind} graph at {precision}, {role}: "
                  + "; ".join(f"{n}x {layer} {prim} ({prec})" for layer, prim, prec, n in rows) + "\n")


if __name__ == "__main__":
    main()
