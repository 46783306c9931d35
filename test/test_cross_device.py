"""Encoder and decoder that compute with different floating point must still agree bit for bit.

The hyperprior's Gaussian scale indexes are derived on both sides from the decoded z. Derived with
the float h_s, a scale within rounding distance of a table boundary can get a different index on
the other side, and the rANS decoder then silently decodes garbage. The codec therefore derives
them with the exact integer hyper-synthesis (`imgcomp.models.integer_prior`). These tests encode
with one numeric path and decode with another over many real images and require the decoded
latent to be the encoder's y_hat exactly; they also show that the old float-index method does
break under a perturbation of the order of float32-vs-float64 differences, so they can fail.
"""

from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imgcomp.codec import Codec
from imgcomp.data.crops import image_paths, read_rgb
from imgcomp.models.gained import encode_bottleneck
from imgcomp.models.integer_prior import FA, SAFE_SUM, _conv2d, _conv_transpose2d
from imgcomp.models.registry import load_model
from imgcomp.padding import pad_to_multiple

pytestmark = pytest.mark.slow  # minutes on two cores: `make test-slow`

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "test" / "fixtures" / "images"
VAL = REPO / "data" / "images" / "val"
MODEL = "hyperprior-mse"
VARIANTS = 40


def _variant(image: np.ndarray, k: int) -> np.ndarray:
    """Crop / shift / rescale / flip / re-tone one fixture deterministically (variant k)."""
    rng = np.random.default_rng(1000 + k)
    h, w = image.shape[:2]
    op = (k // 5) % 8
    if op == 0:  # shifted crop
        dy, dx = (int(v) for v in rng.integers(1, 16, 2))
        out = image[dy:, dx:]
    elif op == 1:  # random-size crop
        ch, cw = int(rng.integers(33, h + 1)), int(rng.integers(33, w + 1))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out = image[y0 : y0 + ch, x0 : x0 + cw]
    elif op == 2:  # downscale
        f = float(rng.uniform(0.5, 0.9))
        out = cv2.resize(image, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
    elif op == 3:  # upscale (capped)
        f = float(rng.uniform(1.1, 1.6))
        out = cv2.resize(image, (min(320, round(w * f)), min(320, round(h * f))), interpolation=cv2.INTER_CUBIC)
    elif op == 4:  # mirror + shift
        out = image[:, ::-1][int(rng.integers(0, 8)) :]
    elif op == 5:  # rotate 90 degrees
        out = np.rot90(image, k=int(rng.integers(1, 4)))
    elif op == 6:  # contrast / brightness
        out = np.clip(image.astype(np.float32) * float(rng.uniform(0.6, 1.3)) + float(rng.uniform(-30, 30)), 0, 255)
        out = out.astype(np.uint8)
    else:  # sub-pixel shift
        m = np.float32([[1, 0, rng.uniform(-3, 3)], [0, 1, rng.uniform(-3, 3)]])
        out = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(out)


def _val_images() -> list[tuple[str, np.ndarray]]:
    return [(f"val/{p.stem}", read_rgb(p)) for p in image_paths(VAL)] if VAL.is_dir() else []


@pytest.fixture(scope="module")
def dataset() -> list[tuple[str, np.ndarray, int]]:
    """(name, image, quality) for the end-to-end tests: the committed fixtures, 40 variants of
    them, and a 256x384 crop of each validation image of data/images/val when present (the full
    images go through the cheaper index tests). Qualities cycle over every level."""
    fixtures = [(p.stem, read_rgb(p)) for p in image_paths(FIXTURES)]
    items = list(fixtures)
    for k in range(VARIANTS):
        name, image = fixtures[k % len(fixtures)]
        items.append((f"{name}~{k}", _variant(image, k)))
    for k, (name, image) in enumerate(_val_images()):
        y0, x0 = (17 * k) % (image.shape[0] - 255), (41 * k) % (image.shape[1] - 383)
        items.append((f"{name}[{y0}:,{x0}:]", np.ascontiguousarray(image[y0 : y0 + 256, x0 : x0 + 384])))
    return [(name, image, 1 + i % 6) for i, (name, image) in enumerate(items)]


@pytest.fixture(scope="module")
def index_dataset() -> list[tuple[str, np.ndarray]]:
    """For the index-level tests (every quality level): fixtures, variants, full validation images."""
    fixtures = [(p.stem, read_rgb(p)) for p in image_paths(FIXTURES)]
    variants = [(f"{n}~{k}", _variant(i, k)) for k, (n, i) in ((k, fixtures[k % len(fixtures)]) for k in range(VARIANTS))]
    return fixtures + variants + _val_images()


@pytest.fixture()
def threads():
    """Restore the torch thread count after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def assert_decodes_exactly(decoder: Codec, payload: bytes, y_hat: torch.Tensor, name: str, image: bool = True) -> None:
    """The decoder's latent is the encoder's y_hat, and (if `image`) its image is the one it
    would synthesise from the encoder's y_hat itself."""
    assert torch.equal(y_hat, torch.round(y_hat)), name
    captured = {}
    decode_y_hat = decoder.decode_y_hat

    def spy(frame):
        captured["latent"] = decode_y_hat(frame)
        return captured["latent"]

    with mock.patch.object(decoder, "decode_y_hat", spy):
        decoded = decoder.decode(payload)
    latent = captured["latent"]
    sent = y_hat.to(device=latent.device, dtype=latent.dtype)
    mismatches = int((latent != sent).sum())
    assert mismatches == 0, f"{name}: {mismatches} of {latent.numel()} latent values differ"
    if not image:
        return
    with mock.patch.object(decoder, "decode_y_hat", lambda frame: sent.clone()):
        reference = decoder.decode(payload)
    assert np.array_equal(decoded, reference), name


# --------------------------------------------------------------------------- the integer network
def test_integer_convolutions_equal_torch_on_integer_tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-2**20, 2**20, (2, 6, 5, 7), generator=g).double()
    w = torch.randint(-2**20, 2**20, (6, 4, 5, 5), generator=g).double()
    expected = F.conv_transpose2d(x, w, stride=2, padding=2, output_padding=1)
    assert torch.equal(_conv_transpose2d(x, w, 2, 2, 1), expected)
    w = torch.randint(-2**20, 2**20, (8, 6, 3, 3), generator=g).double()
    assert torch.equal(_conv2d(x, w, 1), F.conv2d(x, w, padding=1))


def test_indexes_have_build_indexes_semantics():
    net, _ = load_model(MODEL)
    gc = net.gaussian_conditional
    prior = net.integer_prior()
    # integer scales from below the lower bound to beyond the table, except the thresholds
    # themselves (whose float counterparts differ from them by up to half a unit); all below
    # 2**24, so that they are exact in float32 as well
    scales = torch.arange(0, 2**24, 13, dtype=torch.float64)
    scales = torch.cat([scales, prior.thresholds - 1, prior.thresholds + 1, torch.tensor([2.0**24 - 1])])
    scales = scales[~torch.isin(scales, prior.thresholds)].reshape(1, 1, 1, -1)
    expected = gc.build_indexes((scales / 2**FA).float())
    assert torch.equal(prior.indexes_from_scales(scales), expected)
    assert int(prior.indexes_from_scales(torch.zeros(1, 1, 1, 1, dtype=torch.float64))) == 0


def test_partial_sums_stay_far_below_two_to_the_53():
    net, _ = load_model(MODEL)
    prior = net.integer_prior()
    assert prior.max_partial_sum < SAFE_SUM <= 2**50
    # Weights 1000x larger (say after much more training) lower the saturation limits instead of
    # breaking exactness.
    with torch.no_grad():
        for p in net.h_s.parameters():
            p.mul_(1000)
    big = net.integer_prior()
    assert big.max_partial_sum < SAFE_SUM
    assert min(layer.limit for layer in big.layers[:-1]) < min(layer.limit for layer in prior.layers[:-1])
    # Absurd z symbols (the rANS coder escape-codes values outside the tables) saturate and stay
    # exact: float32 and float64 copies of the weights agree.
    symbols = torch.randint(-2**30, 2**30, (1, net.arch.hyper_channels, 3, 4)).double()
    for model in (load_model(MODEL)[0], net):
        scales = model.integer_prior().scales(symbols)
        assert torch.equal(scales, copy.deepcopy(model).double().integer_prior().scales(symbols))
        assert torch.equal(scales, scales.round()) and 0 <= scales.min() and scales.max() <= big.layers[-1].limit


def _per_level(net, image: np.ndarray):
    """For every quality level: y, the z symbols as decoded, the old decoder's z_hat, float scales
    h_s(z_hat) and the integer prior's scales (g_a runs once; the levels differ by their gains)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(net.gain.dtype) / 255
    x, _ = pad_to_multiple(x, net.downsampling)
    features = net.g_a(x)
    prior = net.integer_prior()
    for level in range(net.levels):
        gain, _ = net._gains(level, 1)
        y = features * gain
        z = net.h_a(torch.abs(y))
        z_strings, symbols = encode_bottleneck(net.entropy_bottleneck, z, add_medians=False)
        assert torch.equal(net._decode_z_symbols(z_strings, tuple(z.shape[-2:])), symbols)
        z_hat = symbols.float() + net.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        yield y, symbols, net.h_s(z_hat), prior.scales(symbols)


@torch.no_grad()
def test_integer_scales_are_close_to_float_and_cost_no_rate(index_dataset):
    net, _ = load_model(MODEL)
    gc, prior = net.gaussian_conditional, net.integer_prior()
    float_bytes = integer_bytes = agree = total = 0
    worst = 0.0
    for _, image in index_dataset:
        for y, _, scales, integer in _per_level(net, image):
            worst = max(worst, float(((integer / 2**FA - scales).abs() / scales.clamp(min=0.11)).max()))
            float_indexes = gc.build_indexes(scales)
            integer_indexes = prior.indexes_from_scales(integer)
            agree += int((float_indexes == integer_indexes).sum())
            total += float_indexes.numel()
            float_bytes += len(gc.compress(y, float_indexes)[0])
            integer_bytes += len(gc.compress(y, integer_indexes)[0])
    print(f"integer prior: {integer_bytes} vs {float_bytes} bytes of y ({100 * (integer_bytes / float_bytes - 1):+.4f} %), "
          f"{1 - agree / total:.2e} of {total} indexes differ, max relative scale error {worst:.1e}")
    assert worst < 2e-3  # relative scale error (to max(scale, 0.11)); measured ~4e-4
    assert agree / total > 0.999  # measured: 1.5e-4 of the indexes differ
    assert integer_bytes == pytest.approx(float_bytes, rel=0.01)  # measured: within 0.001 %


# ----------------------------------------------------------------- cross-path bit-exact decoding
def test_encode_with_one_thread_decode_with_two(dataset, threads):
    encoder, decoder = Codec(MODEL), Codec(MODEL)
    torch.set_num_threads(1)
    encoded = [encoder.encode_with_latent(image, quality) for _, image, quality in dataset]
    torch.set_num_threads(2)
    for i, ((name, _, _), (payload, y_hat)) in enumerate(zip(dataset, encoded)):
        assert_decodes_exactly(decoder, payload, y_hat, name, image=i % 3 == 0)


@pytest.mark.parametrize("double_side", ["encoder", "decoder"])
def test_float64_network_on_one_side(dataset, double_side):
    """A float64 network on one side: g_a/h_a in float64 may quantize some y or z elements to
    other symbols than float32 would; the decoder must then decode exactly what was sent."""
    encoder, decoder = Codec(MODEL), Codec(MODEL)
    double = encoder if double_side == "encoder" else decoder
    double.net.double()
    to_tensor = double._to_tensor
    double._to_tensor = lambda rgb: to_tensor(rgb).double()
    float32 = Codec(MODEL)
    differing = 0
    for i, (name, image, quality) in enumerate(dataset if double_side == "encoder" else dataset[::2]):
        payload, y_hat = encoder.encode_with_latent(image, quality)
        assert y_hat.dtype == (torch.float64 if double_side == "encoder" else torch.float32)
        assert_decodes_exactly(decoder, payload, y_hat, name, image=i % 3 == 0)
        if double_side == "encoder":
            differing += payload != float32.encode(image, quality=quality)
    if double_side == "encoder":
        print(f"float64 encoder: {differing} of {len(dataset)} payloads differ from the float32 encoder's")


def _perturbed(scales: torch.Tensor, seed: int, relative: float = 1e-6) -> torch.Tensor:
    """The scales as another device might compute them: each off by `relative`, random sign."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, scales.shape, generator=g).to(scales.dtype) * 2 - 1
    return scales * (1 + relative * sign)


@torch.no_grad()
def test_float_indexes_flip_under_a_tiny_perturbation_integer_indexes_cannot(index_dataset, dataset):
    """The old float-index method: 1e-6 relative noise on the encoder's float scales (float32
    rounding is 6e-8; float32 vs float64 h_s measured ~2e-7) changes some index somewhere in the
    data set, which desynchronises the rANS decoder. The integer method is immune because it never
    reads float scales: perturbing the float h_s of the encoder changes nothing."""
    net, _ = load_model(MODEL)
    gc = net.gaussian_conditional
    flips = seed = 0
    for _, image in index_dataset:
        for _, _, scales, _ in _per_level(net, image):
            seed += 1
            flips += int((gc.build_indexes(_perturbed(scales, seed)) != gc.build_indexes(scales)).sum())
    print(f"float method: {flips} index flips over {len(index_dataset)} images x {net.levels} levels")
    assert flips >= 1, "the perturbation never flipped a float index: this test could not detect desync"

    # Integer method, end to end: the encoder's float h_s output is perturbed (as above, via a
    # forward hook) and must not matter.
    encoder, decoder = Codec(MODEL), Codec(MODEL)
    calls = []

    def perturb(module, args, output):
        calls.append(1)
        return _perturbed(output, len(calls))

    encoder.net.h_s.register_forward_hook(perturb)
    probe = torch.rand(1, net.arch.hyper_channels, 2, 3) * 4
    assert not torch.equal(encoder.net.h_s(probe), decoder.net.h_s(probe))  # the hook is live
    for i, (name, image, quality) in enumerate(dataset):
        payload, y_hat = encoder.encode_with_latent(image, quality)
        assert_decodes_exactly(decoder, payload, y_hat, name, image=i % 3 == 0)
    assert len(calls) == 1  # only the probe: coding never evaluated the float h_s


@torch.no_grad()
def test_integer_prior_is_identical_across_dtypes_and_threads(dataset, threads):
    """Same z symbols -> the same integer scales from float32 and float64 copies of the weights,
    with one or two threads (on CUDA too: scripts/cross_device_check.py)."""
    net32, _ = load_model(MODEL)
    net64 = copy.deepcopy(net32).double()
    symbols = []
    for _, image, quality in dataset[::5]:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        out = net32.compress(pad_to_multiple(x, net32.downsampling)[0], quality - 1)
        symbols.append(net32._decode_z_symbols(out["strings"][1], out["shape"]))
    torch.set_num_threads(1)
    single = [net32.integer_prior().scales(q) for q in symbols]
    torch.set_num_threads(2)
    double = [net64.integer_prior().scales(q) for q in symbols]
    for a, b in zip(single, double):
        assert torch.equal(a, b)
