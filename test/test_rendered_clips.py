"""Rendered moving-camera clips: bench-video's validation scenes are never the temporal trainer's."""

from __future__ import annotations

import numpy as np
import pytest

import imgcomp.multitask.scenes.scene as scene_module
from imgcomp.eval.video import read_source
from imgcomp.multitask.scenes.moving_camera import (
    RENDERED_FPS,
    TRAIN_SEEDS,
    VALIDATION_FIRST_SEED,
    parse_source,
    training_seeds,
    validation_clip,
)
from imgcomp.training.temporal import rendered_sequences


def test_training_and_validation_seeds_are_disjoint():
    assert set(training_seeds(len(TRAIN_SEEDS))).isdisjoint(range(VALIDATION_FIRST_SEED, VALIDATION_FIRST_SEED + 10**6))
    assert max(training_seeds(len(TRAIN_SEEDS))) < VALIDATION_FIRST_SEED
    with pytest.raises(ValueError, match="at most"):
        training_seeds(len(TRAIN_SEEDS) + 1)


def test_trainer_renders_its_training_seeds(monkeypatch):
    drawn = []
    real = scene_module.sample_scene

    def spy(seed: int, n_textures: int):
        drawn.append(seed)
        return real(seed, n_textures)

    monkeypatch.setattr(scene_module, "sample_scene", spy)
    seqs = rendered_sequences(3, 2, size=16)
    assert drawn == [1000, 1001, 1002] == list(training_seeds(3))
    assert len(seqs) == 3


@pytest.mark.parametrize("seed", [0, TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1])
def test_bench_refuses_training_scenes(seed):
    with pytest.raises(ValueError, match="temporal trainer"):
        read_source(f"rendered:{seed}", 2)


def test_parse_source():
    assert parse_source("rendered:2017") == 2017
    assert parse_source("data/video/vtest.avi") is None


def test_validation_clip_is_deterministic_and_moves():
    a = validation_clip(VALIDATION_FIRST_SEED, 3, 48, 64)
    b = validation_clip(VALIDATION_FIRST_SEED, 3, 48, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert [f.shape for f in a] == [(48, 64, 3)] * 3 and a[0].dtype == np.uint8
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])  # the camera moves every frame
    other = validation_clip(VALIDATION_FIRST_SEED + 1, 1, 48, 64)
    assert not np.array_equal(a[0], other[0])


def test_bench_source_is_640x480_at_10_fps():
    frames, fps = read_source(f"rendered:{VALIDATION_FIRST_SEED}", 2)
    assert fps == RENDERED_FPS == 10.0
    assert [f.shape for f in frames] == [(480, 640, 3)] * 2
