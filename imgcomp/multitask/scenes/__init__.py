"""Procedural indoor scenes with exact depth, surface normals and semantic labels.

Synthetic training data for multi-task heads on the codec latent, where no labelled dataset can be
downloaded: ``render_scene(seed)`` ray-casts a random textured room with furniture.
"""

from imgcomp.multitask.scenes.camera import Camera, Intrinsics
from imgcomp.multitask.scenes.render import (
    CLASS_ID,
    CLASSES,
    TEST_FIRST_SEED,
    TRAIN_FIRST_SEED,
    RenderedFrame,
    benchmark,
    generate_split,
    render_frame,
    render_scene,
)
from imgcomp.multitask.scenes.scene import Light, Material, Scene, SceneObject, sample_scene
from imgcomp.multitask.scenes.textures import TexturePool

__all__ = [
    "CLASSES",
    "CLASS_ID",
    "TEST_FIRST_SEED",
    "TRAIN_FIRST_SEED",
    "Camera",
    "Intrinsics",
    "Light",
    "Material",
    "RenderedFrame",
    "Scene",
    "SceneObject",
    "TexturePool",
    "benchmark",
    "generate_split",
    "render_frame",
    "render_scene",
    "sample_scene",
]
