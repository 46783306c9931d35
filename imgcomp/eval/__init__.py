"""Evaluation: rate-distortion (`rd`), the families comparison (`compare`), latency and memory benches, rate-control bench, classical baselines, the demo and the payload fuzzer."""
