"""Temporal mode: latent P-frames (imgcomp.temporal) on real vtest.avi frames at 192x144.

The frames are the first 100 of Debian's vtest.avi, resized to 192x144 and committed as an MJPEG
clip (test/fixtures/vtest_100f_192x144.avi, 0.8 MB), so the suite needs no fetched data."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, BitstreamError, Frame, pack_fields, unpack
from imgcomp.codec import Codec
from imgcomp.temporal.stream import StreamDecoder, StreamEncoder
from imgcomp.temporal.tables import load_tables

MODEL = "hyperprior-mse"
ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / "test" / "fixtures" / "vtest_100f_192x144.avi"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    from imgcomp.video import read_video

    frames, _ = read_video(VIDEO, 100)
    assert len(frames) == 100 and frames[0].shape == (144, 192, 3)
    return frames


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(MODEL)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _encode(codec, frames, interval, quality=2, **kw):
    enc = StreamEncoder(codec, keyframe_interval=interval, **kw)
    return enc, [enc.encode(f, quality=quality) for f in frames]


def test_tables_are_verified_and_named_in_every_pframe(codec, frames):
    tables = load_tables(MODEL)
    assert tables.model_hash == codec.model_hash
    _, out = _encode(codec, frames[:3], 10)
    frame = unpack(out[1].payload)
    assert frame.header.frame_type == FRAME_PREDICTED and len(frame.streams) == 1 and frame.streams[0][:8] == tables.tables_id


def test_100_frame_group_is_bit_exact_across_backends_threads_dtypes(codec, frames, threads, tmp_path, monkeypatch):
    """Encode with torch, 2 threads, float32; decode with ONNX Runtime, 1 thread, float64 network
    (and with torch, 2 threads): every frame's latent equals the encoder's, no drift over 99 P-frames."""
    monkeypatch.setenv("IMGCOMP_CACHE", str(tmp_path))
    torch.set_num_threads(2)
    _, out = _encode(codec, frames, interval=100)
    assert [e.keyframe for e in out] == [True] + [False] * 99
    ort = Codec(MODEL, backend="onnxruntime")
    ort.net.double()
    torch.set_num_threads(1)
    decoders = [StreamDecoder(ort), StreamDecoder(Codec(MODEL))]
    for t, e in enumerate(out):
        for d in decoders:
            header, y_hat = d.decode_latent(e.payload)
            assert header.frame_number == t
            assert np.array_equal(y_hat, e.y_hat), f"frame {t} latent differs"
    for d in decoders:
        assert d.stats.decoded_predicted == 99 and d.stats.missing_reference == 0
    # the ONNX decoder renders the last P-frame like the torch codec renders that latent
    image = StreamDecoder(ort)
    for e in out[:-1]:
        image.decode_latent(e.payload)
    shown = image.decode(out[-1].payload)
    assert shown.shape == frames[0].shape
    ref = StreamDecoder(codec)
    for e in out[:-1]:
        ref.decode_latent(e.payload)
    assert np.abs(ref.decode(out[-1].payload).astype(int) - shown.astype(int)).max() <= 1


def test_dropped_frame_costs_only_the_frames_up_to_the_next_keyframe(codec, frames):
    _, out = _encode(codec, frames[:30], interval=10)
    assert [t for t, e in enumerate(out) if e.keyframe] == [0, 10, 20]
    dec = StreamDecoder(codec)
    shown = {}
    for t, e in enumerate(out):
        if t == 12:
            continue  # lost message
        got = dec.decode_latent(e.payload)
        if got is not None:
            shown[t] = got[1]
    assert sorted(set(range(30)) - set(shown)) == list(range(12, 20))
    assert dec.stats.missing_reference == 7
    for t, y in shown.items():
        assert np.array_equal(y, out[t].y_hat)
    # a replayed or reordered P-frame is never applied to the wrong reference
    assert dec.decode_latent(out[25].payload) is None


def test_forced_keyframes(codec, frames):
    enc = StreamEncoder(codec, keyframe_interval=10)
    reasons = [enc.encode(f, quality=2).reason for f in frames[:4]]
    assert reasons == ["first", "", "", ""]
    assert enc.encode(frames[4], quality=3).reason == "level"
    assert enc.encode(frames[5], quality=3).reason == ""
    # scene change: a different picture costs less as a key frame than as a P-frame
    other = np.ascontiguousarray(np.rot90(frames[50], 2))
    assert enc.encode(other, quality=3).reason == "scene"
    enc.request_keyframe()
    assert enc.encode(other, quality=3).reason == "request"
    assert enc.encode(np.ascontiguousarray(frames[0][:128]), quality=3).reason == "size"
    intra = StreamEncoder(codec, keyframe_interval=0)
    assert all(intra.encode(f).keyframe for f in frames[:3])
    with pytest.raises(ValueError):
        StreamEncoder(codec, keyframe_interval=-1)


def test_keyframe_payload_is_the_intra_payload(codec, frames):
    _, out = _encode(codec, frames[:1], interval=10)
    plain = unpack(codec.encode(frames[0], quality=2))
    key = unpack(out[0].payload)
    assert key.streams == plain.streams and key.header.frame_type == FRAME_KEY
    assert np.array_equal(codec.decode(out[0].payload), codec.decode(codec.encode(frames[0], quality=2)))


def test_codec_decode_refuses_pframes_naming_the_stream_decoder(codec, frames):
    _, out = _encode(codec, frames[:2], interval=10)
    with pytest.raises(BitstreamError, match="StreamDecoder"):
        codec.decode(out[1].payload)


def test_wrong_stream_and_restart_are_refused(codec, frames):
    enc_a, out_a = _encode(codec, frames[:3], interval=10)
    enc_b, out_b = _encode(codec, frames[:3], interval=10)
    assert enc_a.stream_id != enc_b.stream_id
    dec = StreamDecoder(codec)
    dec.decode_latent(out_a[0].payload)
    dec.decode_latent(out_a[1].payload)
    assert dec.decode_latent(out_b[2].payload) is None  # same frame numbers, other stream
    assert dec.stats.missing_reference == 1
    enc_a.restart()
    restarted = [enc_a.encode(f, quality=2) for f in frames[:3]]
    assert restarted[0].keyframe
    assert dec.decode_latent(restarted[2].payload) is None  # its reference was never seen
    assert dec.decode_latent(restarted[0].payload) is not None
    assert dec.decode_latent(restarted[1].payload) is not None
    # a P-frame needs its model's quality and size; P-frames cannot name themselves
    frame = unpack(restarted[2].payload)
    for change in ({"quality": 3}, {"frame_number": frame.header.reference_frame_number}):
        forged = pack_fields(Frame(dataclasses.replace(frame.header, **change), frame.streams))
        with pytest.raises(BitstreamError):
            dec.decode_latent(forged)
    forged = pack_fields(Frame(frame.header, (b"\x00" * 8 + frame.streams[0][8:],)))
    with pytest.raises(BitstreamError, match="temporal tables"):
        dec.decode_latent(forged)


def test_rd_choices_lower_the_rate(codec, frames):
    _, rd = _encode(codec, frames[:10], interval=10)
    _, plain = _encode(codec, frames[:10], interval=10, rd=False)
    assert sum(len(e.payload) for e in rd[1:]) < sum(len(e.payload) for e in plain[1:])
    # without RD choices a P-frame reproduces the intra latent exactly
    y = Codec(MODEL).encode_with_latent(frames[9], quality=2)[1][0].numpy().astype(np.int64)
    assert np.array_equal(plain[9].y_hat, y)


CHILD = textwrap.dedent(
    """
    import random, sys, numpy as np, cv2
    from imgcomp.bitstream import BitstreamError, Frame, pack_fields, unpack
    from imgcomp.codec import Codec
    from imgcomp.temporal.stream import StreamDecoder, StreamEncoder
    from imgcomp.temporal.tables import LATENT_LIMIT
    from imgcomp.video import read_video
    raw, _ = read_video(__import__("pathlib").Path("test/fixtures/vtest_100f_192x144.avi"), 2)
    frames = [cv2.resize(f, (128, 96)) for f in raw]
    codec = Codec("hyperprior-mse")
    enc = StreamEncoder(codec, 10)
    key, p = [enc.encode(f, quality=2).payload for f in frames]
    real = unpack(p)
    rng = random.Random(7)
    outcomes = {}
    for i in range(int(sys.argv[1])):
        dec = StreamDecoder(codec)
        dec.decode_latent(key)
        tables_id, string = real.streams[0][:8], real.streams[0][8:]
        choice = i % 4
        if choice == 0:
            string = bytes(rng.getrandbits(8) for _ in range(len(string)))
        elif choice == 1:
            string = bytes(rng.getrandbits(8) for _ in range(4 * rng.randint(0, 200)))
        elif choice == 2:
            string = b"\\xff" * 4 * rng.randint(2, 3000)
        else:
            string = bytes(4 * rng.randint(0, 5))
        payload = pack_fields(Frame(real.header, (tables_id + string,)))
        try:
            out = dec.decode(payload)
            ok = out is not None and out.shape == frames[1].shape and np.abs(dec._ref.y_hat).max() <= LATENT_LIMIT
            kind = "decoded" if ok else "bad"
        except BitstreamError:
            kind = "refused"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    print(outcomes)
    sys.exit(1 if "bad" in outcomes else 0)
    """
)


def test_forged_pframes_are_refused_or_decoded_without_crash():
    """Forged P-frame strings (valid CRC, right stream and reference) in a child process: each is
    refused with BitstreamError or decodes to an in-range latent; the child never crashes."""
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, "40"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "decoded" in proc.stdout and "refused" in proc.stdout


def test_tables_of_another_format_are_refused(tmp_path):
    """Tables written for the first P-frame format (per-(channel, bucket) tables, no format field)
    are refused with a message that names the format, not misread."""
    import io
    import json

    from imgcomp.temporal.tables import TemporalTables

    buf = io.BytesIO()
    meta = {"model_hash": "0" * 16, "block": 2, "bucket_edges": [1, 2, 3, 5, 9], "levels": 1}
    np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), radius0=np.array([16]))
    with pytest.raises(ValueError, match="format 1"):
        TemporalTables.from_bytes(buf.getvalue())
    shipped = load_tables(MODEL)
    again = TemporalTables.from_bytes(shipped.to_bytes())
    lt, back = shipped.level(3), again.level(3)
    assert np.array_equal(lt.residual_freqs, back.residual_freqs) and np.array_equal(lt.context_map, back.context_map)
    assert again.layout == shipped.layout


def test_context_quantisation_backs_off_to_the_parent():
    """Each context goes to the shared table that codes it best; a context never seen in training
    takes its channel-and-bucket parent's table, not an arbitrary one."""
    from imgcomp.temporal.tables import BUCKETS, Layout
    from imgcomp.training.temporal import quantise_contexts

    m, symbols = 2, 5
    per_channel = Layout().contexts_per_channel
    counts = np.zeros((m * per_channel, symbols))
    peaked, flat = np.array([1, 2, 200, 2, 1.0]), np.array([40, 40, 40, 40, 40.0])
    counts[0:per_channel // BUCKETS] = peaked  # channel 0, bucket 0: all its contexts peaked
    counts[per_channel : per_channel + per_channel // BUCKETS - 1] = flat  # channel 1, bucket 0, but its last context unseen
    context_map, freqs = quantise_contexts(counts, m, 4)
    assert freqs.shape == (4, symbols)
    peaked_table, flat_table = context_map[0], context_map[per_channel]
    assert peaked_table != flat_table
    assert freqs[peaked_table].argmax() == 2 and freqs[flat_table].max() < 2 * freqs[flat_table].min()
    assert context_map[per_channel + per_channel // BUCKETS - 1] == flat_table
