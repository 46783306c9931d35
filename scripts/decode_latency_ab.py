"""Decode latency of valid 640x480 vtest.avi frames with the `imgcomp` on PYTHONPATH (1 torch thread).

Before/after a change, in one session, alternating (the machine's load then hits both alike):

    git worktree add /tmp/before <rev>
    PYTHONPATH=/tmp/before python scripts/decode_latency_ab.py before
    PYTHONPATH=. python scripts/decode_latency_ab.py after
"""

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
    video = sys.argv[2] if len(sys.argv) > 2 else "data/video/vtest.avi"
    frames, _ = read_video(video, max_frames=24)
    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA) for f in frames]
    codec = Codec("hyperprior-mse")
    payloads = [codec.encode(f, quality=3) for f in frames]
    for payload in payloads[:3]:  # warm-up
        codec.decode(payload)
    decode_ms = []
    for payload in payloads[3:]:
        start = time.perf_counter()
        codec.decode(payload)
        decode_ms.append(1e3 * (time.perf_counter() - start))
    print(json.dumps({
        "tree": sys.argv[1] if len(sys.argv) > 1 else "this",
        "decode_p50_ms": round(float(np.median(decode_ms)), 1),
        "mean_payload_bytes": round(float(np.mean([len(p) for p in payloads])), 1),
    }))


if __name__ == "__main__":
    main()
