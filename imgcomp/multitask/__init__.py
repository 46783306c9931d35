"""Perception straight from the codec features: depth, semantic segmentation and surface normals.

* `pack`      - rendered scenes (imgcomp.scenes) coded by a shipped codec: the train/test data
* `model`     - the multi-task head (latent, decoded-image or original-image input)
* `objectives` - losses and metrics
* `train`     - ``imgcomp train --config config/multitask/<input>.yaml``
* `weights`   - shipped heads (imgcomp/weights/multitask), tied to their codec's weights
* `predictor` - payload bytes -> depth, labels, normals (what the multi-task node runs)
* `evaluate`  - ``imgcomp multitask eval``: the head beside its baselines, timing, picture grid
"""

from imgcomp.multitask.model import HeadConfig, MultiTaskHead
from imgcomp.multitask.predictor import Perception, Perceiver

__all__ = ["HeadConfig", "MultiTaskHead", "Perception", "Perceiver"]
