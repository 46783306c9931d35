"""Temporal mode through the nodes' cores (`imgcomp.stream`): EncoderCore sends groups of a key
frame and latent P-frames, DecoderCore keeps one reference per stream, refuses P-frames whose
reference it does not hold (`missing_reference`) and never shows a wrong image.

Frames: real video, the first frames of vtest.avi at 192x144 (test/fixtures/vtest_100f_192x144.avi),
as rosbags messages serialized to CDR and parsed back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, unpack
from imgcomp.metrics import psnr
from imgcomp.stream import DecoderCore, EncoderCore, FeaturesFields, ImageFields, Rejection
from imgcomp.temporal.stream import StreamDecoder, synthesise

from stream_support import features_msg, image_msg

pytestmark = [pytest.mark.robot, pytest.mark.usefixtures("one_torch_thread")]

VIDEO = Path(__file__).resolve().parent / "fixtures" / "vtest_100f_192x144.avi"
MODEL = "hyperprior-mse"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    from imgcomp.video import read_video

    frames, _ = read_video(VIDEO, 24)
    return frames


@pytest.fixture(scope="module")
def messages(frames):
    return [ImageFields.from_msg(image_msg(f, "rgb8", stamp_ns=1_000_000_000 * (10 + i))) for i, f in enumerate(frames)]


def _send(encoder: EncoderCore, messages) -> list[FeaturesFields]:
    out = []
    for i, m in enumerate(messages):
        f = encoder.process(m, now=10.0 + i / 10)
        assert isinstance(f, FeaturesFields), f
        out.append(FeaturesFields.from_msg(features_msg(f)))  # through CDR, as a subscriber gets it
    return out


def _image(out: ImageFields) -> np.ndarray:
    return np.frombuffer(out.data, dtype=np.uint8).reshape(out.height, out.width, 3)


@pytest.fixture(scope="module")
def group_of_5(factory, messages) -> list[FeaturesFields]:
    return _send(EncoderCore(factory, model=MODEL, quality=3, keyframe_interval=5), messages[:15])


def test_encoder_sends_groups_and_says_so(factory, messages, group_of_5) -> None:
    sent = group_of_5
    assert [f.frame_type for f in sent] == ([FRAME_KEY] + [FRAME_PREDICTED] * 4) * 3
    assert [f.frame_number for f in sent] == list(range(15))
    assert [f.reference_frame_number for f in sent] == [n if n % 5 == 0 else n - 1 for n in range(15)]
    headers = [unpack(f.data).header for f in sent]
    assert len({h.stream_id for h in headers}) == 1
    assert [h.frame_type for h in headers] == [f.frame_type for f in sent]  # fields mirror the payload
    keys = [len(f.data) for f in sent if f.frame_type == FRAME_KEY]
    ps = [len(f.data) for f in sent if f.frame_type == FRAME_PREDICTED]
    assert max(ps) < min(keys) / 2, (keys, ps)  # P-frames are what saves the bits
    encoder = EncoderCore(factory, model=MODEL, quality=3, keyframe_interval=5)
    _send(encoder, messages[:7])
    d = encoder.diagnostics()
    assert (d["keyframes_sent"], d["pframes_sent"], d["key_reasons"]) == ("2", "5", "first 1, interval 1")
    assert d["temporal"].startswith("on: a key frame every 5 frames")
    assert d["keyframe_interval"] == "5" and d["stream_id"] == f"{encoder.stream_id:08x}"


def test_decoder_shows_every_frame_of_a_whole_stream(factory, frames, group_of_5) -> None:
    decoder = DecoderCore(factory, model=MODEL)
    reference = StreamDecoder(factory(MODEL))
    for t, f in enumerate(group_of_5):
        out = decoder.process(f)
        assert isinstance(out, ImageFields), out
        expected = reference.decode(f.data)
        assert np.array_equal(_image(out), expected)
        assert psnr(frames[t], _image(out)) > 20.0
    d = decoder.diagnostics()
    assert (d["keyframes_decoded"], d["pframes_decoded"], d["streams"]) == ("3", "12", "1")
    assert "rejected.missing_reference" not in d


def test_a_dropped_message_costs_exactly_the_frames_up_to_the_next_keyframe(factory, group_of_5) -> None:
    whole = DecoderCore(factory, model=MODEL)
    lossy = DecoderCore(factory, model=MODEL)
    shown: dict[int, np.ndarray] = {}
    rejected: dict[int, Rejection] = {}
    for t, f in enumerate(group_of_5):
        expected = whole.process(f)
        if t == 6:
            continue  # lost on the way: a P-frame in the second group (5..9)
        out = lossy.process(f)
        if isinstance(out, Rejection):
            rejected[t] = out
        else:
            shown[t] = _image(out)
            assert np.array_equal(shown[t], _image(expected)), f"frame {t} differs from the lossless decoder's"
    assert sorted(rejected) == [7, 8, 9] and sorted(shown) == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14]
    assert all(r.cause == "missing_reference" for r in rejected.values())
    assert "needs frame 6, which was not decoded" in rejected[7].message
    assert "needs frame 7" in rejected[8].message
    assert lossy.diagnostics()["rejected.missing_reference"] == "3"
    # the key frame is lost: its whole group goes, nothing else
    keyless = DecoderCore(factory, model=MODEL)
    results = [keyless.process(f) for t, f in enumerate(group_of_5) if t != 5]
    missing = [r for r in results if isinstance(r, Rejection)]
    assert len(missing) == 4 and all(r.cause == "missing_reference" for r in missing)


def test_reordered_messages_never_apply_to_the_wrong_reference(factory, group_of_5) -> None:
    decoder = DecoderCore(factory, model=MODEL)
    whole = StreamDecoder(factory(MODEL))
    order = [0, 1, 3, 2, 4, 5]  # 3 arrives before 2
    expected = {t: whole.decode(group_of_5[t].data) for t in range(6)}
    outcome = {t: decoder.process(group_of_5[t]) for t in order}
    assert isinstance(outcome[3], Rejection) and outcome[3].cause == "missing_reference"
    assert np.array_equal(_image(outcome[2]), expected[2])  # 2 still has its reference (1)
    assert isinstance(outcome[4], Rejection)  # its reference 3 was refused
    assert np.array_equal(_image(outcome[5]), expected[5])  # the key frame resumes the stream


def test_a_restarted_encoder_is_a_new_stream(factory, messages) -> None:
    """An encoder restart reuses the frame numbers; only the stream id tells the streams apart, and
    a P-frame of the new stream is never applied to the old stream's reference."""
    first = _send(EncoderCore(factory, model=MODEL, quality=3, keyframe_interval=10), messages[:5])
    restarted = _send(EncoderCore(factory, model=MODEL, quality=3, keyframe_interval=10), messages[4:8])
    a, b = unpack(first[0].data).header.stream_id, unpack(restarted[0].data).header.stream_id
    assert a != b
    assert [f.frame_number for f in restarted] == [0, 1, 2, 3]  # the same numbers as the old stream's
    decoder = DecoderCore(factory, model=MODEL)
    for f in first[:4]:
        assert isinstance(decoder.process(f), ImageFields)
    # the restart's key frame is lost: its P-frame 1 names frame 0, which the old stream also had
    late = decoder.process(restarted[1])
    assert isinstance(late, Rejection) and late.cause == "missing_reference"
    assert f"stream {b:08x}" in late.message and "no key frame of this stream" in late.message
    # the old stream's reference is untouched: its next P-frame still decodes
    assert decoder.references.streams == 1
    assert isinstance(decoder.process(first[4]), ImageFields)


def test_two_encoders_on_one_topic_keep_their_own_references(factory, frames, messages) -> None:
    a = _send(EncoderCore(factory, model=MODEL, quality=3, keyframe_interval=10), messages[:6])
    b = _send(EncoderCore(factory, model=MODEL, quality=2, keyframe_interval=10), messages[12:18])
    decoder = DecoderCore(factory, model=MODEL)
    alone_a, alone_b = StreamDecoder(factory(MODEL)), StreamDecoder(factory(MODEL))
    for fa, fb in zip(a, b):
        for f, alone in ((fa, alone_a), (fb, alone_b)):
            out = decoder.process(f)
            assert isinstance(out, ImageFields), out
            assert np.array_equal(_image(out), alone.decode(f.data))
    assert decoder.diagnostics()["streams"] == "2"


def test_streams_are_bounded_least_recently_used_first(factory, messages) -> None:
    encoders = [EncoderCore(factory, model=MODEL, quality=2, keyframe_interval=10) for _ in range(3)]
    sent = [_send(e, messages[:2]) for e in encoders]
    decoder = DecoderCore(factory, model=MODEL, max_streams=2)
    for s in sent:
        assert isinstance(decoder.process(s[0]), ImageFields)
    assert decoder.references.streams == 2 and decoder.references.evicted == 1
    evicted = decoder.process(sent[0][1])
    assert isinstance(evicted, Rejection) and "evicted" in evicted.message
    assert isinstance(decoder.process(sent[2][1]), ImageFields)


def test_skipped_messages_are_caught_up_not_lost(factory, group_of_5) -> None:
    """The node's worker skips to the newest message when behind: the skipped frames' latents are
    still decoded (no synthesis), so the next frame shown is the right one."""
    whole = StreamDecoder(factory(MODEL))
    expected = [whole.decode(f.data) for f in group_of_5]
    decoder = DecoderCore(factory, model=MODEL)
    assert isinstance(decoder.process(group_of_5[0]), ImageFields)
    assert decoder.catch_up(group_of_5[1:4]) == 3
    assert np.array_equal(_image(decoder.process(group_of_5[4])), expected[4])
    assert decoder.diagnostics()["skipped_frames_caught_up"] == "3"
    # frames before a later key frame of their stream are not even entropy-decoded
    assert decoder.catch_up([*group_of_5[5:9], group_of_5[10]]) == 1
    assert np.array_equal(_image(decoder.process(group_of_5[11])), expected[11])
    # without catching up, the frame after the skipped ones has lost its reference
    without = DecoderCore(factory, model=MODEL)
    without.process(group_of_5[0])
    assert isinstance(without.process(group_of_5[4]), Rejection)


def test_keyframe_interval_changes_at_runtime(factory, messages) -> None:
    encoder = EncoderCore(factory, model=MODEL, quality=2, keyframe_interval=10)
    types = [encoder.process(m, now=i / 10).frame_type for i, m in enumerate(messages[:3])]
    encoder.set_keyframe_interval(0)
    types += [encoder.process(m, now=0.3 + i / 10).frame_type for i, m in enumerate(messages[3:5])]
    assert encoder.diagnostics()["temporal"] == "off: keyframe_interval is 0; every frame is a key frame"
    encoder.set_keyframe_interval(2)
    types += [encoder.process(m, now=0.5 + i / 10).frame_type for i, m in enumerate(messages[5:9])]
    assert types == [0, 1, 1, 0, 0, 1, 0, 1, 0]
    with pytest.raises(ValueError):
        encoder.set_keyframe_interval(-1)
    with pytest.raises(ValueError):
        EncoderCore(factory, model=MODEL, keyframe_interval=True)


def test_level_and_model_changes_force_a_keyframe_and_a_model_change_a_new_stream(factory, messages) -> None:
    encoder = EncoderCore(factory, model=MODEL, quality=2, keyframe_interval=10)
    decoder = DecoderCore(factory, model=None)
    sent = []

    def send(m):
        f = encoder.process(m)
        sent.append(f)
        assert isinstance(decoder.process(FeaturesFields.from_msg(features_msg(f))), ImageFields)
        return f

    send(messages[0])
    send(messages[1])
    first_stream = encoder.stream_id
    encoder.set_quality(4)
    assert send(messages[2]).frame_type == FRAME_KEY
    assert send(messages[3]).frame_type == FRAME_PREDICTED
    encoder.set_model("factorized-mse")
    assert encoder.stream_id != first_stream and not encoder.temporal
    assert "factorized-mse" in encoder.diagnostics()["temporal"] and "key frame" in encoder.diagnostics()["temporal"]
    assert [send(m).frame_type for m in messages[4:6]] == [FRAME_KEY, FRAME_KEY]
    encoder.set_model(MODEL)
    assert [send(m).frame_type for m in messages[6:8]] == [FRAME_KEY, FRAME_PREDICTED]
    assert encoder.stream_id != first_stream and encoder.temporal
    d = encoder.diagnostics()
    assert d["key_reasons"] == "first 1, intra 1, level 1, model 2", d["key_reasons"]
    assert {unpack(f.data).header.stream_id for f in sent[4:6]} == {unpack(sent[4].data).header.stream_id}
    # a replayed P-frame of the old stream is refused: its reference is no longer what is held
    replayed = decoder.process(dataclasses.replace(sent[3]))
    assert isinstance(replayed, Rejection) and replayed.cause == "missing_reference"


def test_a_model_without_temporal_tables_sends_keyframes_with_its_stream_id(factory, messages) -> None:
    encoder = EncoderCore(factory, model="factorized-mse", quality=2, keyframe_interval=10)
    sent = _send(encoder, messages[:3])
    assert [f.frame_type for f in sent] == [FRAME_KEY] * 3 and [f.frame_number for f in sent] == [0, 1, 2]
    assert {unpack(f.data).header.stream_id for f in sent} == {encoder.stream_id}
    note = encoder.diagnostics()["temporal"]
    assert note.startswith("off: ") and "no temporal tables" in note
    decoder = DecoderCore(factory, model=None)
    assert all(isinstance(decoder.process(f), ImageFields) for f in sent)


def test_a_classical_codec_says_its_frames_decode_alone(factory, messages) -> None:
    """No advice to train temporal tables for a still-image codec (the node logs this note)."""
    encoder = EncoderCore(factory, model="webp", quality=2, keyframe_interval=10)
    sent = _send(encoder, messages[:2])
    assert [f.frame_type for f in sent] == [FRAME_KEY] * 2
    note = encoder.diagnostics()["temporal"]
    assert note.startswith("off: webp is a classical still-image codec") and "training" not in note
    decoder = DecoderCore(factory, model=None)
    assert all(isinstance(decoder.process(f), ImageFields) for f in sent)
    assert decoder.diagnostics()["keyframes_decoded"] == "2"  # the node showed 0 for these


def test_synthesis_of_a_keyframe_through_the_stream_path_is_the_codec_decode(factory, group_of_5) -> None:
    codec = factory(MODEL)
    key = group_of_5[0].data
    header, y_hat = StreamDecoder(codec).decode_latent(key)
    assert np.array_equal(synthesise(codec, y_hat, header), codec.decode(key))
