"""Entropy-coding time of 640x480 vtest.avi frames (outside the transforms) with the `imgcomp` on
PYTHONPATH, one torch thread (wall and CPU time), and a digest of the payloads and decoded latents.

Before/after a change, alternating runs in one session (the machine's load then hits both alike);
equal digests mean byte-identical payloads for the same latents:

    mkdir /tmp/before && git archive <rev> imgcomp | tar -x -C /tmp/before
    for i in 1 2 3; do PYTHONPATH=/tmp/before python scripts/entropy_ab.py before
                       PYTHONPATH=. python scripts/entropy_ab.py after; done
"""

import hashlib
import json
import sys
import time

import cv2
import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.video import read_video


def main() -> None:
    torch.set_num_threads(1)
    frames, _ = read_video("data/video/vtest.avi", max_frames=12)
    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in frames]
    codec = Codec("hyperprior-mse")
    analysed = [codec.analyse_image(f, 3) for f in frames]
    digest = hashlib.sha256()
    encode_ms, decode_ms, encode_cpu, decode_cpu = [], [], [], []
    for i, a in enumerate(analysed):
        start, cpu = time.perf_counter(), time.process_time()
        out = codec.net.compress_analysed(a.y, a.z)
        encode_ms.append(1e3 * (time.perf_counter() - start))
        encode_cpu.append(1e3 * (time.process_time() - cpu))
        strings = [[s[0]] for s in out["strings"]]
        start, cpu = time.perf_counter(), time.process_time()
        y_hat = codec.net.decompress_latent(strings, out["shape"])
        decode_ms.append(1e3 * (time.perf_counter() - start))
        decode_cpu.append(1e3 * (time.process_time() - cpu))
        assert torch.equal(y_hat, out["y_hat"])
        for s in strings:
            digest.update(s[0])
        digest.update(y_hat.numpy().tobytes())
    print(json.dumps({
        "tree": sys.argv[1] if len(sys.argv) > 1 else "this",
        "entropy_encode_ms": {"min": round(min(encode_ms[2:]), 2), "p50": round(float(np.median(encode_ms[2:])), 2)},
        "entropy_decode_ms": {"min": round(min(decode_ms[2:]), 2), "p50": round(float(np.median(decode_ms[2:])), 2)},
        # CPU time of this single-threaded process: far less sensitive to other processes' load
        "entropy_encode_cpu_ms_p50": round(float(np.median(encode_cpu[2:])), 2),
        "entropy_decode_cpu_ms_p50": round(float(np.median(decode_cpu[2:])), 2),
        "digest": digest.hexdigest()[:16],
    }))


if __name__ == "__main__":
    main()
