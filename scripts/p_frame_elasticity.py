"""How a P-frame's size follows the encoder's rate-distortion multiplier: the measurement behind
`imgcomp.stream.rate_control.P_SIZE_ELASTICITY`.

    python scripts/p_frame_elasticity.py [--size 384] [--levels 2 3 4 5]

For each level and each multiplier 1/16 .. 16, the first 20 frames of vtest.avi (resized to
`--size` wide) are coded as one group (a key frame, then P-frames, no scene-change keys); the
mean P-frame bytes of frames 1-9 are printed with the slope d log(bytes) / d log(multiplier)
per octave and over the whole range.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from imgcomp.codec import Codec
from imgcomp.temporal.stream import StreamEncoder
from imgcomp.video import read_video

MULTIPLIERS = [2.0**k for k in range(-4, 5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=Path("data/video/vtest.avi"))
    parser.add_argument("--size", type=int, default=384, help="frame width (height keeps 4:3)")
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 3, 4, 5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames, _ = read_video(args.video, 20)
    frames = [cv2.resize(f, (args.size, args.size * 3 // 4), interpolation=cv2.INTER_AREA) for f in frames]
    codec = Codec("hyperprior-mse")
    for level in args.levels:
        analysed = [codec.analyse_image(f, level) for f in frames]
        sizes = []
        for multiplier in MULTIPLIERS:
            encoder = StreamEncoder(codec, keyframe_interval=len(frames), rd_multiplier=multiplier, scene_change=False)
            out = [encoder.encode_analysed(a.y, a.z, a.level, a.height, a.width, a.channels, a.encoding) for a in analysed]
            sizes.append(float(np.mean([len(e.payload) for e in out[1:10]])))
        per_octave = np.diff(np.log(sizes)) / math.log(2.0)
        overall = math.log(sizes[-1] / sizes[0]) / math.log(MULTIPLIERS[-1] / MULTIPLIERS[0])
        print(f"level {level}: P-frame bytes {[round(s) for s in sizes]} at multipliers 1/16..16; "
              f"elasticity per octave {np.round(per_octave, 2).tolist()}, overall {overall:.3f}")


if __name__ == "__main__":
    main()
