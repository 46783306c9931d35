"""`Codec`: a shipped model behind `encode(image) -> bytes` and `decode(bytes) -> image`.

Padding, colour handling, device, quality levels and the bitstream container live here, so a
ROS node or a bag tool only moves bytes and numpy arrays.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imgcomp.bitstream import (
    FRAME_KEY,
    BitstreamError,
    Frame,
    FrameHeader,
    ModelMismatchError,
    check_output_size,
    pack,
    unpack,
    validate_image_size,
)
from imgcomp.classical import ClassicalCodec
from imgcomp.inference import make_transforms
from imgcomp.inference.striped import analyse_striped, needs_stripes, synthesise_to_uint8, to_uint8
from imgcomp.models.refine import RDTarget, check_effort, coded_objective, refine_latents, supports_effort
from imgcomp.models.registry import load_model, model_entry
from imgcomp.padding import pad_image_to_multiple

from imgcomp.defaults import CLASSICAL_MODELS, DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MODEL  # noqa: F401 - named here too



@dataclass(frozen=True)
class AnalysedImage:
    """A checked input image after the analysis transforms (`Codec.analyse_image`)."""

    y: Tensor
    z: Tensor | None
    quality: int  # 1-based, as everywhere outside the models (they take a 0-based `level_index`)
    height: int
    width: int
    channels: int
    encoding: str
    x: Tensor | None = None  # the padded input (1 x 3 x H x W, 0..1) the latents came from


class Codec:
    """Encode and decode single frames with one shipped model.

    Quality levels run from 1 (fewest bits) to `levels`. Every payload decodes on its own.
    Methods are safe to call from several threads (a lock serialises the model).

    `backend` runs the analysis and synthesis transforms on one of `BACKENDS` ("torch",
    "onnxruntime", "openvino", "tensorrt", and their "-int8" variants; graphs from `graphs_dir`,
    else exported once into the cache); entropy coding is the same code on every backend, so
    payloads decode on any of them. `threads` is the intra-op thread count of an ONNX Runtime or
    OpenVINO backend (0: torch's count).

    A classical codec's name ("avif", "jpeg", "jxl", "webp") gives an `imgcomp.classical.ClassicalCodec`
    with the same methods, so every caller takes it like a model.
    """

    def __new__(cls, model: str = DEFAULT_MODEL, *args: object, **kwargs: object) -> Codec:
        if cls is Codec and model in CLASSICAL_MODELS:
            return ClassicalCodec(model, *args, **kwargs)  # type: ignore[return-value, arg-type]
        return super().__new__(cls)

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "cpu",
        quality: int | None = None,
        backend: str = "torch",
        graphs_dir: Path | None = None,
        max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
        threads: int = 0,
    ) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
        if isinstance(max_output_pixels, bool) or not isinstance(max_output_pixels, int) or max_output_pixels < 1:
            raise ValueError(f"max_output_pixels must be a positive integer, got {max_output_pixels!r}")
        self.max_output_pixels = max_output_pixels
        self.model_name = model
        self.entry = model_entry(model)
        net, self.model_hash = load_model(model)
        self.device = torch.device(device)
        # With an exported backend the torch model only does entropy coding: keep it on the CPU.
        self.net = net.to(self.device if backend == "torch" else "cpu").eval()
        self.transforms = make_transforms(backend, self.net, model, self.model_hash, self.device, graphs_dir, threads)
        self.backend = backend
        self.levels = self.net.levels
        self.quality = self._check_quality(quality if quality is not None else (self.levels + 1) // 2)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------- helpers
    def _check_quality(self, quality: int) -> int:
        if isinstance(quality, (bool, np.bool_)) or not isinstance(quality, (int, np.integer)) or not 1 <= int(quality) <= self.levels:
            raise ValueError(f"quality must be an integer in 1..{self.levels}, got {quality!r}")
        return int(quality)

    def set_quality(self, quality: int) -> None:
        self.quality = self._check_quality(quality)

    @staticmethod
    def _as_rgb(image: np.ndarray) -> tuple[np.ndarray, int]:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            validate_image_size(*image.shape)
            return np.repeat(image[:, :, None], 3, axis=2), 1
        if image.ndim == 3 and image.shape[2] == 3:
            validate_image_size(*image.shape[:2])
            return image, 3
        raise ValueError(f"image must be HxW (mono) or HxWx3 (RGB), got shape {image.shape}")

    def _to_tensor(self, rgb: np.ndarray) -> Tensor:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        return x.permute(2, 0, 1)[None].float().div_(255.0)

    def expected_latent_shape(self, height: int, width: int) -> tuple[int, int]:
        d = self.net.downsampling
        return (-(-height // d), -(-width // d))

    # ------------------------------------------------------------------------------------ encode
    def encode(
        self,
        image: np.ndarray,
        quality: int | None = None,
        encoding: str | None = None,
        frame_number: int = 0,
        effort: int = 0,
    ) -> bytes:
        """Compress one uint8 image (HxW mono or HxWx3 RGB) into a self-contained payload.

        `encoding` is the sensor_msgs/Image encoding of the source, recorded so the decoder
        can restore it; it defaults to "rgb8" or "mono8".

        `effort` 0 (the default) is the one-pass encode. 1..3 spend more encode time refining
        the latents for this image against the model's rate-distortion objective
        (`imgcomp.models.refine.EFFORTS`: 1 = 10 straight-through steps, 2 = 30 stochastic
        Gumbel annealing steps + 10 straight-through, 3 = 100 + 20), each step about three
        times a decode; the payload is the same format and decodes with any decoder of these
        weights.
        """
        return self.encode_with_latent(image, quality, encoding, frame_number, effort=effort)[0]

    @torch.no_grad()
    def encode_with_latent(
        self,
        image: np.ndarray,
        quality: int | None = None,
        encoding: str | None = None,
        frame_number: int = 0,
        stream_id: int = 0,
        effort: int = 0,
    ) -> tuple[bytes, Tensor]:
        """`encode`, plus the gained quantized latent y_hat that the payload carries (what a
        decoder must recover exactly; cross-device checks compare against it)."""
        effort = self.check_effort(effort)
        if effort and isinstance(image, np.ndarray) and image.ndim >= 2 and needs_stripes(*image.shape[:2]):
            raise ValueError(f"effort > 0 refines frames of up to 1920x1088 pixels, got {image.shape[1]}x{image.shape[0]}")
        a = self.analyse_image(image, quality, encoding)
        level, height, width, channels, encoding = a.quality, a.height, a.width, a.channels, a.encoding
        out = self.compress_analysed(a.y, a.z) if effort == 0 else self._compress_refined(a, effort)
        streams = tuple(s[0] for s in out["strings"])
        header = FrameHeader(
            model=self.model_name,
            model_hash=self.model_hash,
            height=height,
            width=width,
            channels=channels,
            encoding=encoding,
            quality=level,
            frame_type=FRAME_KEY,
            frame_number=frame_number,
            reference_frame_number=frame_number,
            latent_shape=tuple(int(v) for v in out["shape"]),
            stream_id=stream_id,
        )
        return pack(Frame(header, streams)), out["y_hat"]

    def check_effort(self, effort: int) -> int:
        """`effort` if this model can encode with it; ValueError otherwise."""
        effort = check_effort(effort)
        if effort and not supports_effort(self.net):
            raise ValueError(f"model {self.model_name!r} has no entropy model to refine against: use effort 0")
        return effort

    def rd_target(self, quality: int, height: int, width: int, channels: int = 3) -> RDTarget:
        """The objective this model was trained on at `quality` (bpp + lambda * D), for an
        image of this size: what the effort mode minimises."""
        lambdas = tuple(getattr(self.net.arch, "lambdas", ()))
        if len(lambdas) != self.levels:
            raise ValueError(f"model {self.model_name!r} records no training lambda per level")
        return RDTarget(float(lambdas[quality - 1]), self.entry.get("distortion", "mse"), height, width, channels)

    def _compress_refined(self, a: AnalysedImage, effort: int) -> dict:
        """`compress_analysed` of the refined latents or of the amortised ones, whichever has the
        lower real objective (bytes coded, pixels decoded). Call with the lock held."""
        target = self.rd_target(a.quality, a.height, a.width, a.channels)
        device = self.net.gain.device  # the torch model, also where an exported backend is used
        x = a.x.to(device)
        y0, z0 = a.y.to(device), (a.z.to(device) if a.z is not None else None)
        y, z = refine_latents(self.net, x, y0, z0, a.quality - 1, target, effort)
        candidates = [(y0, z0), (y, z)]
        if z is not None:
            candidates.append((y, self.net.hyper_analyse(y)))  # z re-derived from the refined y

        def objective(out: dict) -> float:
            decoded = to_uint8(self.net.synthesise(out["y_hat"], a.quality - 1)[0, :, : a.height, : a.width], a.channels)
            return coded_objective(x, decoded, sum(len(s[0]) for s in out["strings"]), target)

        coded = [self.net.compress_analysed(cy, cz) for cy, cz in candidates]
        return min(coded, key=objective)

    @torch.no_grad()
    def compress_analysed(self, y: Tensor, z: Tensor | None) -> dict:
        """Entropy-code an analysed image (`analyse_image`'s y, z): the model's
        ``{"strings", "shape", "y_hat"}`` (y_hat: the gained quantized latent a decoder recovers)."""
        with self._lock:
            return self.net.compress_analysed(y, z)

    def image_tensor(self, image: np.ndarray) -> Tensor:
        """A checked uint8 image (HxW or HxWx3) as the padded 1x3xHxW float tensor the analysis
        transform takes (mono repeated to RGB, padded to the model's multiple)."""
        rgb, _ = self._as_rgb(image)
        return self._to_tensor(pad_image_to_multiple(rgb, self.net.downsampling))

    @torch.no_grad()
    def analyse_image(self, image: np.ndarray, quality: int | None = None, encoding: str | None = None) -> AnalysedImage:
        """Check an input image, quality and encoding, and run the analysis transforms: what every
        encoder of this codec (intra here, P-frames in imgcomp.temporal) starts from."""
        rgb, channels = self._as_rgb(image)
        quality = self._check_quality(quality if quality is not None else self.quality)
        encoding = encoding or ("mono8" if channels == 1 else "rgb8")
        if not isinstance(encoding, str) or not encoding.isascii() or len(encoding) > 255:
            raise ValueError(f"encoding must be an ASCII string of at most 255 characters, got {encoding!r}")
        with self._lock:
            x = self._to_tensor(pad_image_to_multiple(rgb, self.net.downsampling))
            y, z = self._analyse(x, quality - 1)
        return AnalysedImage(y, z, quality, rgb.shape[0], rgb.shape[1], channels, encoding, x)

    def _analyse(self, x: Tensor, level_index: int) -> tuple[Tensor, Tensor | None]:
        # Large frames go through g_a stripe by stripe (torch backend) so memory stays bounded.
        if self.backend != "torch" or not needs_stripes(*x.shape[-2:]) or not hasattr(self.net, "hyper_analyse"):
            return self.transforms.analyse(x, level_index)
        y = analyse_striped(lambda stripe: self.net.analyse(stripe, level_index), x)
        return y, self.net.hyper_analyse(y)

    # ------------------------------------------------------------------------------------ decode
    def parse(self, data: bytes | Frame, max_output_pixels: int | None = None, predicted_ok: bool = False) -> Frame:
        """Parse a payload and check it belongs to this codec's weights and fits the size limit
        (`max_output_pixels`, default the codec's; TooLargeError otherwise). A `Frame` already
        parsed by `imgcomp.bitstream.unpack` is checked without being parsed again."""
        frame = data if isinstance(data, Frame) else unpack(data)
        h = frame.header
        check_output_size(h.height, h.width, max_output_pixels or self.max_output_pixels)
        if h.model_hash != self.model_hash or h.model != self.model_name:
            raise ModelMismatchError(h.model, h.model_hash, self.model_name, self.model_hash)
        if h.frame_type != FRAME_KEY and not predicted_ok:
            raise BitstreamError(
                f"frame {h.frame_number} is a predicted frame (reference {h.reference_frame_number}, stream "
                f"{h.stream_id:08x}): it decodes only against its reference, use imgcomp.temporal.StreamDecoder"
            )
        if not 1 <= h.quality <= self.levels:
            raise BitstreamError(f"quality {h.quality} is outside this model's 1..{self.levels}")
        expected_streams = len(self.net.compress_stream_names)
        if h.frame_type != FRAME_KEY:
            expected_streams = len(frame.streams)  # imgcomp.temporal checks its own streams
        if len(frame.streams) != expected_streams:
            raise BitstreamError(f"expected {expected_streams} entropy-coded streams, got {len(frame.streams)}")
        if h.latent_shape != self.expected_latent_shape(h.height, h.width):
            raise BitstreamError(
                f"latent shape {h.latent_shape} does not match a {h.width}x{h.height} image "
                f"(expected {self.expected_latent_shape(h.height, h.width)})"
            )
        return frame

    @torch.no_grad()
    def decode_y_hat(self, frame: Frame) -> Tensor:
        """The gained quantized latent (1 x M x h x w) of a key frame that `parse` accepted:
        entropy decoding only. For P-frames see imgcomp.temporal.StreamDecoder."""
        if frame.header.frame_type != FRAME_KEY:
            raise BitstreamError(f"frame {frame.header.frame_number} is a predicted frame: decode_y_hat reads key frames only")
        strings = [[s] for s in frame.streams]
        with self._lock:
            return self.net.decompress_latent(strings, frame.header.latent_shape)

    def latent_tensor(self, y_hat: np.ndarray | Tensor) -> Tensor:
        """An integer latent (M x h x w, numpy or torch) as the 1 x M x h x w tensor the synthesis
        transform of this codec's backend takes (values are small integers: the cast is exact)."""
        device = self.device if self.backend == "torch" else torch.device("cpu")
        dtype = self.net.g_s[0].weight.dtype if self.backend == "torch" and hasattr(self.net, "g_s") else torch.float32
        y = torch.from_numpy(np.asarray(y_hat)) if not isinstance(y_hat, Tensor) else y_hat
        if y.dim() == 3:
            y = y[None]
        return y.to(device=device, dtype=dtype)

    @torch.no_grad()
    def render(self, y_hat: Tensor, header: FrameHeader) -> np.ndarray:
        """A gained quantized latent (1 x M x h x w) -> the uint8 image of the header's size,
        channels and quality (HxWx3, or HxW for mono sources): the synthesis half of `decode`,
        for key frames and for the latents imgcomp.temporal reconstructs."""
        h = header
        channels = h.channels
        with self._lock:
            if needs_stripes(h.height, h.width):
                image = synthesise_to_uint8(
                    lambda y: self.transforms.synthesise(y, h.quality - 1), y_hat, h.height, h.width, channels
                )
            else:
                image = to_uint8(self.transforms.synthesise(y_hat, h.quality - 1)[0, :, : h.height, : h.width], channels).cpu()
        if channels == 1:
            return np.ascontiguousarray(image[0].numpy())
        return np.ascontiguousarray(image.permute(1, 2, 0).numpy())

    @torch.no_grad()
    def decode(self, data: bytes | Frame, max_output_pixels: int | None = None) -> np.ndarray:
        """Payload (bytes, or a parsed Frame) -> uint8 image of the original size (HxWx3, or HxW for mono sources)."""
        frame = self.parse(data, max_output_pixels)
        return self.render(self.decode_y_hat(frame), frame.header)

    @torch.no_grad()
    def features(self, y_hat: Tensor, quality: int) -> Tensor:
        """The de-gained latent of a gained quantized latent at `quality` (1-based): what the
        multi-task perception head reads."""
        return self.net.latent_features(y_hat, quality - 1)

    @torch.no_grad()
    def decode_latent(self, data: bytes | Frame, max_output_pixels: int | None = None) -> Tensor:
        """The de-gained quantized latent (1 x M x H/16 x W/16, padded area included), without
        running the synthesis transform: the input of the multi-task perception head."""
        frame = self.parse(data, max_output_pixels)
        return self.features(self.decode_y_hat(frame), frame.header.quality)
