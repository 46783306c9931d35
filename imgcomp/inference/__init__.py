"""Where the neural transforms run: torch, ONNX Runtime or TensorRT.

Only the analysis (image -> y, z) and synthesis (y_hat -> image) transforms move between
backends. Entropy coding, and the integer hyperprior that decides the coder's probability
tables, always run in the same torch/CompressAI code, so a payload decodes the same way on every
backend (see `imgcomp.models.integer_prior`).
"""

from imgcomp.inference.errors import BackendUnavailable
from imgcomp.inference.transforms import BACKENDS, Transforms, TorchTransforms, make_transforms

__all__ = ["BACKENDS", "BackendUnavailable", "Transforms", "TorchTransforms", "make_transforms"]
