"""Perception straight from the codec features: depth, semantic segmentation and surface normals.

* `pack`      - rendered scenes (imgcomp.multitask.scenes) coded by a shipped codec: the train/test data
* `model`     - the multi-task head (latent, decoded-image or original-image input)
* `objectives` - losses and metrics
* `train`     - ``imgcomp train --config config/multitask/<input>.yaml``
* `weights`   - shipped heads (imgcomp/weights/multitask), tied to their codec's weights
* `predictor` - payload bytes -> depth, labels, normals (what the multi-task node runs)
* `evaluate`  - ``imgcomp multitask eval``: the head beside its baselines, timing, picture grid
"""

from __future__ import annotations

from typing import Any

__all__ = ["HeadConfig", "MultiTaskHead", "Perception", "Perceiver"]


def __getattr__(name: str) -> Any:
    # These pull in torch; loading them on first use keeps `imgcomp ...` (whose parser
    # imports imgcomp.cli.multitask) from importing torch for every command.
    if name in ("HeadConfig", "MultiTaskHead"):
        from imgcomp.multitask import model

        return getattr(model, name)
    if name in ("Perception", "Perceiver"):
        from imgcomp.multitask import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'imgcomp.multitask' has no attribute {name!r}")
