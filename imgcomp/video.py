"""Reading camera videos as RGB frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_video(path: Path, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    """RGB frames and the frame rate of a video file."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {path} (run `make data` first)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    frames: list[np.ndarray] = []
    while max_frames is None or len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    if not frames:
        raise ValueError(f"video {path} has no readable frames")
    return frames, float(fps)
