"""docs/ros.md's decoder table of bad inputs, walked row by row against the real DecoderCore.

Every row of the table must have a case here (a new row without one fails), and each case must
get the documented cause and a message that starts like the documented text.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from imgcomp.bitstream import Frame, pack_fields, unpack
from imgcomp.codec import Codec
from imgcomp.eval.fuzz import fields_for
from imgcomp.stream.decoder_core import DecoderCore
from imgcomp.stream.rejections import Rejection
from imgcomp.temporal.stream import StreamEncoder

DOCS = Path(__file__).resolve().parent.parent / "docs" / "ros.md"


def decoder_table() -> list[tuple[str, str, str]]:
    text = DOCS.read_text()
    section = text[text.index("Decoder (`rejected payload"):]
    section = section[: section.index("\n\n", section.index("| input |"))]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("input", "---"):
            rows.append((cells[0], cells[1].strip("`"), cells[2]))
    return rows


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec("hyperprior-mse")


@pytest.fixture(scope="module")
def payload(codec: Codec) -> bytes:
    rng = np.random.default_rng(0)
    return codec.encode((rng.random((48, 64, 3)) * 255).astype(np.uint8), quality=2)


@pytest.fixture(scope="module")
def pframe(codec: Codec) -> bytes:
    """A real P-frame (the second frame of a stream that shows the same picture twice)."""
    rng = np.random.default_rng(1)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    encoder = StreamEncoder(codec, keyframe_interval=10)
    encoder.encode(image, quality=2)
    out = encoder.encode(image, quality=2)
    assert not out.keyframe
    return out.payload


def _repack(payload: bytes, **header_changes: object) -> bytes:
    frame = unpack(payload)
    return pack_fields(Frame(replace(frame.header, **header_changes), frame.streams))


def _with_streams(payload: bytes, streams: tuple[bytes, ...]) -> bytes:
    return pack_fields(Frame(unpack(payload).header, streams))


def _raw_with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "big")


def _failing(message: str) -> Callable[[str], Codec]:
    def factory(model: str) -> Codec:
        raise OSError(message)

    return factory


class _BrokenCodec:
    def decode(self, data: bytes, max_output_pixels: int | None = None) -> np.ndarray:
        raise RuntimeError("out of memory")


def _factorized(model: str) -> Codec:
    return Codec("factorized-mse")


# input text (as in the docs) -> (payload builder, fields adjuster, factory, max_output_pixels)
def cases(codec: Codec, payload: bytes, pframe: bytes) -> dict[str, tuple[bytes, Callable, Callable | None, int]]:
    same = lambda f: f  # noqa: E731
    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x10
    return {
        "flipped bits, truncated payload": (bytes(flipped), lambda f: replace(f, data=bytes(flipped)), None, 0),
        "empty `data`": (b"", lambda f: replace(f, data=b""), None, 0),
        "not an imgcomp payload": (b"\x89PNG" + bytes(20), lambda f: replace(f, data=b"\x89PNG" + bytes(20)), None, 0),
        "other bitstream version (1: before the closed rANS tables, 2: before the stream id; re-encode)": (
            _raw_with_crc(payload[:4] + b"\x01" + payload[5:-4]), same, None, 0),
        "a header claiming more pixels than `max_output_pixels`": (
            _repack(payload, height=4096, width=4096, latent_shape=(64, 64)), same, None, 0),
        "an entropy-coded string no encoder could write (forged)": (_with_streams(payload, (b"\x01" * 3, b"\x01" * 3)), same, None, 0),
        "a forged string of valid length": (_with_streams(payload, (b"\xff" * 8, b"\xff" * 8)), same, None, 0),
        "message fields that disagree with the payload": (payload, lambda f: replace(f, width=f.width + 1), None, 0),
        "latent shape that does not fit the image": (_repack(payload, latent_shape=(9, 9)), same, None, 0),
        "a predicted frame whose reference was not decoded here (a lost, dropped or reordered message, a decoder "
        "started mid-stream, an encoder restart), and every later predicted frame of that stream up to its next key "
        "frame": (pframe, same, None, 0),
        "a predicted frame coded with other temporal tables than this installation's": (
            _with_streams(pframe, (b"\x00" * 8,) + unpack(pframe).streams[1:]), same, None, 0),
        "a predicted frame of a model that has no temporal tables": (
            _repack(pframe, model="factorized-mse", model_hash=_factorized("").model_hash, latent_shape=(3, 4)),
            same, _factorized, 0),
        "same model name, other weights": (_repack(payload, model_hash="0123456789abcdef"), same, None, 0),
        "a model this installation does not ship": (_repack(payload, model="my-private-model"), same, None, 0),
        "a shipped model whose weights do not load": (payload, same, _failing("weights file missing"), 0),
        "a source encoding the decoder cannot produce": (_repack(payload, encoding="32FC1"), same, None, 0),
        "the codec itself fails": (payload, same, lambda model: _BrokenCodec(), 0),
    }


def test_every_documented_row_has_a_case(codec: Codec, payload: bytes, pframe: bytes) -> None:
    documented = {row[0] for row in decoder_table()}
    assert documented == set(cases(codec, payload, pframe)), "docs/ros.md and this test disagree on the rows"


@pytest.mark.parametrize("row", decoder_table(), ids=lambda r: r[0][:40])
def test_documented_row(row: tuple[str, str, str], codec: Codec, payload: bytes, pframe: bytes) -> None:
    what, cause, text = row
    data, adjust, factory, _ = cases(codec, payload, pframe)[what]
    core = DecoderCore(factory or (lambda model: codec), model=None)
    result = core.process(adjust(fields_for(data)))
    if cause == "–":
        assert not isinstance(result, Rejection), result
        return
    assert isinstance(result, Rejection) and result.cause == cause, result
    documented_start = re.split(r"<|\.\.\.|`", text.strip("`"))[0].strip()
    assert result.message.startswith(documented_start), (result.message, documented_start)
    assert core.stats.snapshot()[f"rejected.{cause}"] == "1"
