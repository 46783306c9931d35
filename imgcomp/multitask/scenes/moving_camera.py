"""Rendered moving-camera clips of the scenes for the temporal trainer and bench-video.

The scene seeds are split so that no benchmark clip is a training clip: the trainer
(imgcomp.training.temporal) renders the scenes `training_seeds(n)`, all in TRAIN_SEEDS, and
bench-video renders only seeds from VALIDATION_FIRST_SEED up (`validation_clip` refuses others;
test/test_rendered_clips.py checks both ends).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

TRAIN_SEEDS = range(1000, 2000)
VALIDATION_FIRST_SEED = TRAIN_SEEDS.stop
RENDERED_FPS = 10.0  # the motion below is per frame; 10 fps like vtest.avi
SOURCE_PREFIX = "rendered:"


def training_seeds(n: int) -> range:
    """Scene seeds of the trainer's `n` rendered sequences."""
    if not 0 <= n <= len(TRAIN_SEEDS):
        raise ValueError(f"at most {len(TRAIN_SEEDS)} rendered training sequences (seeds {TRAIN_SEEDS.start}.."
                         f"{TRAIN_SEEDS.stop - 1}), got {n}")
    return TRAIN_SEEDS[:n]


def check_validation_seed(seed: int) -> None:
    if seed < VALIDATION_FIRST_SEED:
        raise ValueError(f"rendered seed {seed} is below {VALIDATION_FIRST_SEED}: seeds "
                         f"{TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1} are the temporal trainer's, take one from {VALIDATION_FIRST_SEED} up")


def parse_source(source: str) -> int | None:
    """The seed of a `rendered:SEED` source, None for a video file."""
    if not source.startswith(SOURCE_PREFIX):
        return None
    return int(source[len(SOURCE_PREFIX):])


def validation_clip(seed: int, frames: int, height: int = 480, width: int = 640) -> list[np.ndarray]:
    """RGB frames of a robot-like camera in the room of scene `seed`: a steady turn (0.6-1.7 deg per
    frame, either way), a slow nod of +-4.6 deg and a sideways sway of +-0.1 m (parallax; the scene
    keeps objects and walls >= 0.3 m from the camera, so it stays clear). Deterministic in `seed`."""
    from imgcomp.multitask.scenes.render import default_pool, render_frame
    from imgcomp.multitask.scenes.scene import sample_scene

    check_validation_seed(seed)
    pool = default_pool()
    scene = sample_scene(seed, len(pool))
    cam = scene.camera
    rng = np.random.default_rng([seed, 2])  # the motion; sample_scene draws from streams 0 and 1
    turn = rng.uniform(0.01, 0.03) * rng.choice([-1.0, 1.0])
    nod_period, sway_period = rng.uniform(60, 120), rng.uniform(80, 160)
    side = np.array([math.sin(cam.yaw), -math.cos(cam.yaw), 0.0])  # horizontal, across the first view
    out = []
    for t in range(frames):
        sway = 0.1 * math.sin(2 * math.pi * t / sway_period)
        moved = dataclasses.replace(cam, yaw=cam.yaw + turn * t,
                                    pitch=cam.pitch + 0.08 * math.sin(2 * math.pi * t / nod_period),
                                    position=tuple(float(v) for v in np.asarray(cam.position) + sway * side))
        out.append(render_frame(dataclasses.replace(scene, camera=moved), height, width, pool).rgb)
    return out
