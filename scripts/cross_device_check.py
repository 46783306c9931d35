"""Encode on one device, decode on another, and require bit-exact latents and identical images.

    python scripts/cross_device_check.py --encode-device cuda --decode-device cpu -n 10

Two `Codec` instances (one per device) code N real images (data/images/val, else the committed
test fixtures; qualities cycle over every level). For each image the decoder's latent must equal
the encoder's quantized latent y_hat exactly, and the decoded image must equal what the decoder
synthesises from the encoder's y_hat itself. Exit status 1 on any mismatch.

For comparison it also counts how many scale indexes the *old* float method (indexes from
h_s(z_hat) in float32 on each device) would get differently on the two devices: each such flip
would desynchronise the rANS decoder. The codec itself uses the integer prior and is immune.

Without CUDA a requested cuda device falls back to cpu (the run says so): the check then covers
the code path on one device only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imgcomp.codec import DEFAULT_MODEL, Codec  # noqa: E402
from imgcomp.data.crops import image_paths, read_rgb  # noqa: E402
from imgcomp.padding import pad_to_multiple  # noqa: E402


def resolve(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"note: CUDA is not available here; {device!r} falls back to 'cpu'")
        return "cpu"
    return device


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def decode_with_latent(codec: Codec, payload: bytes, latent: torch.Tensor | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Decode `payload`; with `latent`, synthesise from that latent instead of the decoded one."""
    captured = {}
    decode_y_hat = codec.decode_y_hat

    def spy(frame):
        captured["y_hat"] = decode_y_hat(frame) if latent is None else latent.clone()
        return captured["y_hat"]

    with mock.patch.object(codec, "decode_y_hat", spy):
        image = codec.decode(payload)
    return image, captured["y_hat"]


@torch.no_grad()
def float_index_flips(encoder: Codec, decoder: Codec, image: np.ndarray, quality: int) -> tuple[int, int]:
    """Index disagreements of the old float method (build_indexes(h_s(z_hat))) between devices."""
    nets = (encoder.net, decoder.net)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x, _ = pad_to_multiple(x.to(encoder.device), encoder.net.downsampling)
    y = encoder.net.analyse(x, quality - 1)
    z = encoder.net.h_a(torch.abs(y))
    z_strings = encoder.net.entropy_bottleneck.compress(z)
    indexes = []
    for net in nets:
        z_hat = net.entropy_bottleneck.decompress(z_strings, tuple(z.shape[-2:]))
        indexes.append(net.gaussian_conditional.build_indexes(net.h_s(z_hat)).cpu())
    return int((indexes[0] != indexes[1]).sum()), indexes[0].numel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encode-device", default="cuda")
    parser.add_argument("--decode-device", default="cpu")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--images", type=Path, default=None, help="folder of images (default: data/images/val, else test fixtures)")
    parser.add_argument("-n", type=int, default=10, help="number of images")
    parser.add_argument("--encode-threads", type=int, default=None, help="torch threads while encoding")
    parser.add_argument("--decode-threads", type=int, default=None, help="torch threads while decoding")
    args = parser.parse_args(argv)

    folder = args.images
    if folder is None:
        val = ROOT / "data" / "images" / "val"
        folder = val if val.is_dir() and image_paths(val) else ROOT / "test" / "fixtures" / "images"
    paths = image_paths(folder)[: args.n]
    if not paths:
        print(f"no images in {folder}")
        return 2
    enc_device, dec_device = resolve(args.encode_device), resolve(args.decode_device)
    encoder = Codec(args.model, device=enc_device)
    decoder = Codec(args.model, device=dec_device)
    threads = torch.get_num_threads()
    print(f"model {args.model} ({encoder.model_hash}); encoder on {enc_device}, decoder on {dec_device}; "
          f"{len(paths)} images from {folder}")
    if enc_device.startswith("cuda") or dec_device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")

    failures = 0
    flips = elements = total_bytes = pixels = 0
    t_enc = t_dec = 0.0
    for i, path in enumerate(paths):
        image = read_rgb(path)
        quality = 1 + i % encoder.levels
        torch.set_num_threads(args.encode_threads or threads)
        sync(enc_device)
        t0 = time.perf_counter()
        payload, sent = encoder.encode_with_latent(image, quality)
        sync(enc_device)
        t_enc += time.perf_counter() - t0
        torch.set_num_threads(args.decode_threads or threads)
        t0 = time.perf_counter()
        decoded, received = decode_with_latent(decoder, payload)
        sync(dec_device)
        t_dec += time.perf_counter() - t0
        reference, _ = decode_with_latent(decoder, payload, sent.to(device=received.device, dtype=received.dtype))
        latent_diff = int((received.cpu() != sent.cpu().to(received.dtype)).sum())
        image_same = bool(np.array_equal(decoded, reference))
        own, _ = decode_with_latent(encoder, payload)  # the encoder device decoding its own payload
        own_diff = int(np.abs(own.astype(np.int16) - decoded.astype(np.int16)).max())
        f, n = float_index_flips(encoder, decoder, image, quality)
        flips, elements = flips + f, elements + n
        total_bytes, pixels = total_bytes + len(payload), pixels + image.shape[0] * image.shape[1]
        ok = latent_diff == 0 and image_same
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path.name:28s} {image.shape[1]}x{image.shape[0]} q{quality} "
              f"{len(payload):7d} B  latent values differing: {latent_diff}, image identical to synthesis "
              f"of the sent latent: {image_same}, max pixel diff vs {enc_device} decode: {own_diff}, "
              f"old float-index flips: {f}")
    torch.set_num_threads(threads)
    print(f"\n{len(paths) - failures}/{len(paths)} bit-exact; {8 * total_bytes / pixels:.3f} bpp; "
          f"encode {1e3 * t_enc / len(paths):.0f} ms/image on {enc_device}, decode {1e3 * t_dec / len(paths):.0f} ms/image "
          f"on {dec_device}")
    print(f"old float-index method: {flips} of {elements} indexes differ between {enc_device} and {dec_device} "
          "(each would desynchronise the decoder); the codec uses integer indexes and is unaffected")
    if enc_device == dec_device:
        print("note: encoder and decoder ran on the same device type; run on a CUDA machine for the cross-device check")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
