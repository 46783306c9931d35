"""The nodes' logic without ROS: real rosbags messages (CDR-serialized and parsed back) through
EncoderCore and DecoderCore with the real codec, bad inputs of every kind, the latest-frame
mailbox under overload, rolling statistics and the log throttle."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from imgcomp import bitstream
from imgcomp.image import bytes_per_pixel, image_from_msg_fields, image_to_msg_fields
from imgcomp.metrics import psnr
from imgcomp.models.registry import WeightsError
from imgcomp.nodes_core import (
    DecoderCore,
    EncoderCore,
    FeaturesFields,
    ImageFields,
    LatestFrameMailbox,
    LatestFrameWorker,
    Rejection,
    RejectionLog,
    StreamStats,
    resolve_backend,
    resolve_device,
)
from imgcomp.nodes_core import stats as stats_mod
from imgcomp.rosmsg import (
    IMAGE_TYPE,
    MSG_TYPE,
    deserialize,
    make_features_msg,
    make_image_msg,
    serialize,
    stamp_to_ns,
    typestore,
)

pytestmark = pytest.mark.robot  # on the robot's install path too (.ci/robot.sh, docs/robot.md)


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "images"
H, W = 48, 64
STAMP_NS = 1_700_000_000 * 1_000_000_000 + 123_456_789
FRAME_ID = "camera_optical_frame"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Two torch threads on a busy two-core machine are many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def codecs(hyperprior_codec, factorized_codec):
    return {"hyperprior-mse": hyperprior_codec, "factorized-mse": factorized_codec}


@pytest.fixture(scope="module")
def factory(codecs):
    """The real, already loaded codecs (loading one takes seconds); unknown names fail like
    `Codec(name)` does."""
    calls: list[str] = []

    def make(name: str):
        calls.append(name)
        if name not in codecs:
            from imgcomp.codec import Codec

            return Codec(name)  # raises WeightsError for names the registry lacks
        return codecs[name]

    make.calls = calls  # type: ignore[attr-defined]
    return make


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    bgr = cv2.imread(str(FIXTURES / "fruits.png"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.resize(bgr, (W, H), interpolation=cv2.INTER_AREA)[:, :, ::-1])


# ------------------------------------------------------------------------------ helpers
def _array_for(data: bytes, height: int, width: int, encoding: str) -> np.ndarray:
    """The array `make_image_msg` wants for message bytes in `encoding`."""
    if encoding in ("mono16", "16UC1"):
        return np.frombuffer(data, dtype="<u2").reshape(height, width)
    bpp = bytes_per_pixel(encoding)
    shape = (height, width) if bpp == 1 else (height, width, bpp)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def image_msg(rgb: np.ndarray, encoding: str, stamp_ns: int = STAMP_NS, frame_id: str = FRAME_ID):
    """A rosbags sensor_msgs/Image of `rgb` in `encoding`, as a subscriber receives it."""
    data, height, width, encoding, _ = image_to_msg_fields(rgb, encoding)
    msg = make_image_msg(stamp_ns, frame_id, _array_for(data, height, width, encoding), encoding)
    return deserialize(serialize(msg, IMAGE_TYPE), IMAGE_TYPE)


def raw_image_msg(**fields):
    """A sensor_msgs/Image with arbitrary (possibly inconsistent) fields."""
    types = typestore().types
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id=FRAME_ID
    )
    values = dict(height=H, width=W, encoding="rgb8", is_bigendian=0, step=3 * W,
                  data=np.zeros(3 * H * W, dtype=np.uint8))
    values.update(fields)
    return types[IMAGE_TYPE](header=header, **values)


def features_msg(f: FeaturesFields):
    """FeaturesFields -> rosbags CompressedFeatures -> CDR -> parsed back, as the decoder gets it."""
    msg = make_features_msg(
        stamp_ns=stamp_to_ns(_Header(f.stamp)),
        frame_id=f.frame_id,
        codec=f.codec,
        model_hash=f.model_hash,
        quality=f.quality,
        height=f.height,
        width=f.width,
        encoding=f.encoding,
        data=f.data,
        frame_type=f.frame_type,
        frame_number=f.frame_number,
        reference_frame_number=f.reference_frame_number,
    )
    return deserialize(serialize(msg, MSG_TYPE), MSG_TYPE)


@dataclasses.dataclass
class _Header:
    stamp: object


def roundtrip(encoder: EncoderCore, decoder: DecoderCore, msg):
    features = encoder.process(ImageFields.from_msg(msg))
    assert isinstance(features, FeaturesFields), features
    out = decoder.process(FeaturesFields.from_msg(features_msg(features)))
    assert isinstance(out, ImageFields), out
    return features, out


def out_msg(out: ImageFields):
    """The decoder's output as a real sensor_msgs/Image, serialized and parsed back."""
    msg = make_image_msg(stamp_to_ns(_Header(out.stamp)), out.frame_id,
                         _array_for(out.data, out.height, out.width, out.encoding), out.encoding)
    return deserialize(serialize(msg, IMAGE_TYPE), IMAGE_TYPE)


@pytest.fixture
def encoder(factory) -> EncoderCore:
    return EncoderCore(factory, model="hyperprior-mse", quality=6)


@pytest.fixture
def decoder(factory) -> DecoderCore:
    return DecoderCore(factory, model="hyperprior-mse")


# ---------------------------------------------------------------------- image round trips
ENCODINGS = ["rgb8", "bgr8", "mono8", "rgba8", "yuv422", "bayer_rggb8", "mono16"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_roundtrip_every_encoding(encoder, decoder, codecs, photo, encoding: str) -> None:
    msg = image_msg(photo, encoding)
    features, out = roundtrip(encoder, decoder, msg)
    # The message describes the source and carries what the codec made of it.
    assert (features.codec, features.model_hash) == ("hyperprior-mse", codecs["hyperprior-mse"].model_hash)
    assert (features.height, features.width, features.encoding, features.quality) == (H, W, encoding, 6)
    source = image_from_msg_fields(msg.data, msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian)
    # Decoded output: same header, size and encoding as the source, exactly the codec's pixels.
    back = out_msg(out)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
    assert back.header.frame_id == FRAME_ID
    assert (back.height, back.width, back.encoding, back.step) == (msg.height, msg.width, msg.encoding, msg.step)
    expected = image_to_msg_fields(codecs["hyperprior-mse"].decode(features.data), encoding)[0]
    assert bytes(back.data) == expected
    # And it looks like the source (the shipped weights are small; top quality, small crop).
    decoded = image_from_msg_fields(back.data, back.height, back.width, back.encoding, back.step, 0)
    assert decoded.shape == source.shape
    assert psnr(source, decoded) > 15.0


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (17, 130)], ids=lambda s: f"{s[1]}x{s[0]}")
def test_odd_sizes_keep_their_size(encoder, decoder, photo, size) -> None:
    h, w = size
    rgb = np.ascontiguousarray(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA))
    msg = image_msg(rgb, "rgb8", stamp_ns=42, frame_id="odd")
    _, out = roundtrip(encoder, decoder, msg)
    assert (out.height, out.width, out.step, len(out.data)) == (h, w, 3 * w, 3 * h * w)
    assert out.frame_id == "odd" and (out.stamp.sec, out.stamp.nanosec) == (0, 42)


def test_row_padding_in_the_source_is_accepted(encoder, decoder, photo) -> None:
    padded = np.zeros((H, 3 * W + 8), dtype=np.uint8)
    padded[:, : 3 * W] = photo.reshape(H, 3 * W)
    msg = raw_image_msg(step=3 * W + 8, data=padded.reshape(-1))
    out = decoder.process(FeaturesFields.from_msg(features_msg(encoder.process(ImageFields.from_msg(msg)))))
    assert isinstance(out, ImageFields) and out.step == 3 * W  # republished packed


def test_frame_numbers_count_published_frames(encoder, photo) -> None:
    msg = image_msg(photo, "rgb8")
    numbers = []
    for _ in range(3):
        numbers.append(encoder.process(ImageFields.from_msg(msg)).frame_number)
        encoder.process(ImageFields.from_msg(raw_image_msg(encoding="nope")))  # rejected: no number
    assert numbers == [0, 1, 2]
    assert bitstream.unpack(encoder.process(ImageFields.from_msg(msg)).data).header.frame_number == 3


# ------------------------------------------------------------------------ encoder: bad input
BAD_INPUTS = {
    "unsupported encoding": (dict(encoding="32FC1", step=4 * W, data=np.zeros(4 * H * W, np.uint8)),
                             "unsupported_encoding", "unsupported image encoding '32FC1'"),
    "truncated data": (dict(data=np.zeros(3 * H * W - 1, np.uint8)), "bad_image", "too short"),
    "zero height": (dict(height=0, data=np.zeros(0, np.uint8)), "bad_image", "must be positive"),
    "zero width": (dict(width=0, step=0), "bad_image", "must be positive"),
    "step too small": (dict(step=3 * W - 1), "bad_image", "step"),
    "odd width yuv422": (dict(encoding="yuv422", width=W - 1, step=2 * (W - 1)), "bad_image", "even width"),
    "huge image": (dict(height=100_000, width=100_000, step=300_000), "too_large", "more than max_input_pixels"),
    "side over the codec limit": (dict(height=1, width=20_000, step=60_000, data=np.zeros(60_000, np.uint8)),
                                  "too_large", "side over"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_classified_counted_and_the_next_frame_encodes(factory, photo, case: str) -> None:
    fields, cause, text = BAD_INPUTS[case]
    encoder = EncoderCore(factory, model="hyperprior-mse", max_pixels=8192 * 8192 if "side" in case else 1920 * 1080)
    result = encoder.process(ImageFields.from_msg(raw_image_msg(**fields)))
    assert isinstance(result, Rejection)
    assert result.cause == cause and text in result.message
    assert encoder.stats.rejected_by_cause == {cause: 1}
    snap = encoder.diagnostics()
    assert snap[f"rejected.{cause}"] == "1" and snap["rejected_payloads"] == "1"
    good = encoder.process(ImageFields.from_msg(image_msg(photo, "rgb8")))
    assert isinstance(good, FeaturesFields)
    assert encoder.stats.outputs_total == 1


def test_encode_failure_inside_the_codec_is_contained(factory, photo) -> None:
    """A codec error (here: its own size validation, reached by lifting the core's limit
    check) becomes encode_failed or too_large, never an exception."""
    encoder = EncoderCore(factory, model="hyperprior-mse")
    encoder._precheck = lambda image: None  # reach the codec with a side over its limit
    msg = raw_image_msg(height=1, width=17_000, step=51_000, data=np.zeros(51_000, np.uint8))
    result = encoder.process(ImageFields.from_msg(msg))
    assert isinstance(result, Rejection) and result.cause == "encode_failed"
    assert "exceeds the limit" in result.message


def test_model_and_quality_switch_at_runtime(factory, codecs, photo) -> None:
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=2)
    decoder = DecoderCore(factory, model="hyperprior-mse")
    msg = image_msg(photo, "rgb8")
    assert encoder.process(ImageFields.from_msg(msg)).quality == 2
    encoder.set_quality(5)
    assert encoder.process(ImageFields.from_msg(msg)).quality == 5
    with pytest.raises(ValueError):
        encoder.set_quality(encoder.levels + 1)
    encoder.set_model("factorized-mse")
    f = encoder.process(ImageFields.from_msg(msg))
    assert (f.codec, f.model_hash, f.quality) == ("factorized-mse", codecs["factorized-mse"].model_hash, 5)
    # The decoder was started with the hyperprior model and loads the one the payload names.
    out = decoder.process(FeaturesFields.from_msg(features_msg(f)))
    assert isinstance(out, ImageFields)
    assert decoder.loaded_models == ["hyperprior-mse", "factorized-mse"]
    with pytest.raises(WeightsError):
        encoder.set_model("no-such-model")
    assert encoder.model_name == "factorized-mse"  # the old model stays in use


def test_switching_to_a_study_model_by_name(factory, photo) -> None:
    """The study's fixed-rate families are selected by name like any other model."""
    from imgcomp.models.registry import load_manifest
    from imgcomp.models.study import STUDY_FAMILIES

    name = next(n for n, e in sorted(load_manifest().items()) if e["family"] == "lossy-cae")
    assert load_manifest()[name]["family"] in STUDY_FAMILIES
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=4)
    decoder = DecoderCore(factory, model="hyperprior-mse")
    encoder.set_model(name)
    assert (encoder.levels, encoder.quality) == (1, 1)  # clamped to the model's single level
    features, out = roundtrip(encoder, decoder, image_msg(photo, "rgb8"))
    assert features.codec == name and (out.height, out.width) == photo.shape[:2]


def test_model_switch_during_an_encode_is_safe(factory, photo) -> None:
    """Frames encoded while another thread switches models all decode, each with its model."""
    encoder = EncoderCore(factory, model="hyperprior-mse")
    decoder = DecoderCore(factory, model=None)
    msg = image_msg(photo, "rgb8")
    results: list = []
    stop = threading.Event()

    def encode_loop():
        while not stop.is_set():
            results.append(encoder.process(ImageFields.from_msg(msg)))

    thread = threading.Thread(target=encode_loop)
    thread.start()
    try:
        for model in ("factorized-mse", "hyperprior-mse", "factorized-mse"):
            time.sleep(0.05)
            encoder.set_model(model)
            encoder.set_quality(1 + len(results) % encoder.levels)
    finally:
        stop.set()
        thread.join()
    assert len(results) >= 3
    models = set()
    for f in results:
        assert isinstance(f, FeaturesFields)
        assert isinstance(decoder.process(FeaturesFields.from_msg(features_msg(f))), ImageFields)
        models.add(f.codec)
    assert "factorized-mse" in models


def test_rate_control_through_the_encoder(factory, photo) -> None:
    clock = iter(np.arange(0, 100, 1 / 30))
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=6, target_kbps=1.0)
    msg = image_msg(photo, "rgb8")
    qualities = [encoder.process(ImageFields.from_msg(msg), now=next(clock)).quality for _ in range(4)]
    assert qualities[0] == 6 and qualities[1:] == [1, 1, 1]  # far below the range: lowest level
    diag = encoder.diagnostics()
    assert diag["rate_range"] == "below_range" and "holding level 1" in diag["rate_note"]
    level, message = encoder.status()
    assert level == stats_mod.WARN and "below the lowest level" in message
    encoder.set_target_kbps(0)
    assert encoder.process(ImageFields.from_msg(msg), now=next(clock)).quality == 6


# ---------------------------------------------------------------------- decoder: bad payload
@pytest.fixture(scope="module")
def good_features(factory, photo) -> FeaturesFields:
    encoder = EncoderCore(factory, model="hyperprior-mse", quality=3)
    f = encoder.process(ImageFields.from_msg(image_msg(photo, "bgr8")))
    assert isinstance(f, FeaturesFields)
    return f


def _repacked(f: FeaturesFields, **header_changes) -> FeaturesFields:
    """The same frame, re-packed (valid checksum) with other header values; the message
    fields follow the header, as a real encoder with those settings would write them."""
    frame = bitstream.unpack(f.data)
    header = dataclasses.replace(frame.header, **header_changes)
    data = bitstream.pack(bitstream.Frame(header, frame.streams))
    return dataclasses.replace(f, data=data, codec=header.model, model_hash=header.model_hash,
                               encoding=header.encoding)


def _flip(data: bytes, index: int) -> bytes:
    raw = bytearray(data)
    raw[index] ^= 0x40
    return bytes(raw)


BAD_PAYLOADS = {
    "flipped bit": (lambda f: dataclasses.replace(f, data=_flip(f.data, len(f.data) // 2)),
                    "malformed_payload", "checksum mismatch"),
    "truncated": (lambda f: dataclasses.replace(f, data=f.data[:-7]), "malformed_payload", "checksum"),
    "empty": (lambda f: dataclasses.replace(f, data=b""), "malformed_payload", "payload is empty"),
    "not imgcomp": (lambda f: dataclasses.replace(f, data=b"\x89PNG\r\n\x1a\n" + bytes(40)),
                    "malformed_payload", "not an imgcomp bitstream"),
    "fields disagree": (lambda f: dataclasses.replace(f, width=f.width + 1),
                        "malformed_payload", "width=65 but the payload says 64"),
    "other weights": (lambda f: _repacked(f, model_hash="0123456789abcdef"), "model_mismatch", "0123456789abcdef"),
    "unknown model": (lambda f: _repacked(f, model="my-private-model"), "unknown_model", "'my-private-model'"),
    "latent shape": (lambda f: _repacked(f, latent_shape=(9, 9)), "malformed_payload", "latent shape"),
    "unknown encoding": (lambda f: _repacked(f, encoding="32FC1"), "unsupported_encoding", "32FC1"),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_bad_payload_is_rejected_and_the_next_frame_decodes(factory, codecs, good_features, case: str) -> None:
    corrupt, cause, text = BAD_PAYLOADS[case]
    decoder = DecoderCore(factory, model="hyperprior-mse")
    bad = corrupt(good_features)
    result = decoder.process(FeaturesFields.from_msg(features_msg(bad)))
    assert isinstance(result, Rejection), result
    assert result.cause == cause and text in result.message, result
    if cause == "model_mismatch":  # the error names both hashes
        assert codecs["hyperprior-mse"].model_hash in result.message
    assert decoder.stats.rejected_by_cause == {cause: 1}
    assert decoder.diagnostics()[f"rejected.{cause}"] == "1"
    assert decoder.status()[0] == stats_mod.ERROR  # frames came in, nothing decoded yet
    good = decoder.process(FeaturesFields.from_msg(features_msg(good_features)))
    assert isinstance(good, ImageFields) and (good.height, good.width, good.encoding) == (H, W, "bgr8")
    assert decoder.status()[0] == stats_mod.WARN  # decoding again, rejections in the window


def test_unknown_model_is_never_loaded(factory, good_features) -> None:
    decoder = DecoderCore(factory, model="hyperprior-mse")
    before = len(factory.calls)
    decoder.process(_repacked(good_features, model="my-private-model"))
    assert len(factory.calls) == before and decoder.loaded_models == ["hyperprior-mse"]


def test_decoder_model_cache_is_bounded(factory, codecs, good_features) -> None:
    decoder = DecoderCore(factory, model="factorized-mse", max_cached_models=1)
    assert isinstance(decoder.process(good_features), ImageFields)
    assert decoder.loaded_models == ["hyperprior-mse"]


# -------------------------------------------------------------------- latest-frame mailbox
class SlowConsumer:
    """Stands in for a slow encoder: blocks on the first item until released."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.busy = threading.Event()
        self.release = threading.Event()
        self.done = threading.Condition()

    def __call__(self, item: int) -> None:
        self.seen.append(item)
        self.busy.set()
        assert self.release.wait(10)
        with self.done:
            self.done.notify_all()


def test_mailbox_drops_under_overload_and_serves_the_newest() -> None:
    consumer = SlowConsumer()
    drops: list[int] = []
    worker = LatestFrameWorker(consumer, on_drop=lambda: drops.append(1)).start()
    try:
        assert worker.put(0) is False
        assert consumer.busy.wait(10)  # item 0 is being processed
        assert worker.put(1) is False  # waits in the slot
        assert [worker.put(i) for i in range(2, 6)] == [True] * 4  # each replaces the unseen one
        assert worker.dropped == 4 and len(drops) == 4
        with consumer.done:
            consumer.release.set()
            assert consumer.done.wait_for(lambda: len(consumer.seen) == 2, 10)
        deadline = time.monotonic() + 10
        while worker.processed < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert consumer.seen == [0, 5]  # never 1..4: latency stays within one frame
        assert worker.processed == 2
    finally:
        consumer.release.set()
        assert worker.stop()
    assert worker.put(6) is True and worker.dropped == 5  # after stop: dropped, not processed
    assert consumer.seen == [0, 5]


def test_mailbox_get_and_close() -> None:
    box: LatestFrameMailbox[str] = LatestFrameMailbox()
    assert box.get(timeout=0.01) == (False, None)
    box.put("a")
    box.put("b")
    assert box.get(timeout=0) == (True, "b") and box.dropped == 1
    box.put("c")
    box.close()
    assert box.get() == (False, None) and box.dropped == 2 and box.closed


def test_worker_survives_handler_errors() -> None:
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def handler(item: int) -> None:
        if item == 0:
            raise RuntimeError("boom")
        seen.append(item)
        done.set()

    worker = LatestFrameWorker(handler, on_error=errors.append).start()
    worker.put(0)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.put(1)
    assert done.wait(10)
    assert worker.stop()
    assert [str(e) for e in errors] == ["boom"] and seen == [1]


def test_worker_with_the_real_encoder_drops_under_a_burst(factory, photo) -> None:
    encoder = EncoderCore(factory, model="hyperprior-mse")
    outputs: list[FeaturesFields] = []
    worker = LatestFrameWorker(lambda msg: outputs.append(encoder.process(ImageFields.from_msg(msg))),
                               on_drop=encoder.stats.record_dropped).start()
    msgs = [image_msg(photo, "rgb8", stamp_ns=i) for i in range(30)]
    for msg in msgs:  # a burst far faster than encoding
        encoder.stats.record_input()
        worker.put(msg)
    deadline = time.monotonic() + 30
    while worker.mailbox.pending and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.stop(30)
    assert worker.processed + worker.dropped == 30 and worker.dropped > 0
    assert outputs[-1].stamp.nanosec == 29  # the newest frame always comes out
    snap = encoder.diagnostics()
    assert snap["dropped_frames_total"] == str(worker.dropped) and snap["frames_in_total"] == "30"
    assert encoder.status()[0] == stats_mod.WARN


# ------------------------------------------------------------------------- stats / logging
class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stats_snapshot_and_levels() -> None:
    clock = FakeClock()
    s = StreamStats("decode", window_s=2.0, clock=clock)
    assert s.status() == (stats_mod.OK, "idle: no input in the last 2 s")
    for i in range(20):  # 10 fps for 2 s, 1000-byte payloads of 100x100 images
        clock.t += 0.1
        s.record_input()
        s.record_output(1000, 100 * 100, latency_s=0.01 * (i % 10 + 1))
    snap = s.snapshot()
    assert all(isinstance(v, str) for v in snap.values())
    assert snap["fps_in"] == snap["fps_out"] == "10.00"
    assert snap["mean_bpp"] == "0.8000" and snap["bitrate_kbps"] == "80.0"
    assert snap["decode_ms_p50"] == "55.0" and snap["decode_ms_p95"] == "100.0"
    assert snap["status"] == "OK"
    s.record_dropped(2)
    assert s.status()[0] == stats_mod.WARN
    clock.t += 5  # the window moves past everything
    s.record_input()
    s.record_rejected("malformed_payload")
    level, message = s.status()
    assert level == stats_mod.ERROR and "malformed_payload: 1" in message
    snap = s.snapshot()
    assert snap["dropped_frames"] == "0" and snap["dropped_frames_total"] == "2"
    assert snap["rejected.malformed_payload"] == "1" and snap["status"] == "ERROR"
    clock.t += 5
    assert s.status()[0] == stats_mod.OK


def test_latency_window_is_bounded() -> None:
    s = StreamStats(max_latency_samples=10, clock=FakeClock())
    for i in range(100):
        s.record_output(10, 10, latency_s=i / 1000)
    assert s.snapshot()["encode_ms_p50"] == "94.5"  # only the last 10 samples (90..99 ms)


def test_rejection_log_throttles_per_cause() -> None:
    clock = FakeClock()
    log = RejectionLog(period_s=10, clock=clock)
    bad = Rejection("malformed_payload", "checksum mismatch")
    assert log.report(bad, "payload") == "rejected payload (malformed_payload): checksum mismatch"
    assert log.report(bad) is None
    assert log.report(Rejection("model_mismatch", "other weights")) is not None  # other cause: logged
    clock.t += 3
    assert log.report(bad) is None
    clock.t += 10
    line = log.report(bad)
    assert line is not None and "[2 more malformed_payload rejection(s)" in line


def test_backend_and_device_fallbacks() -> None:
    assert resolve_backend("torch").used == "torch" and not resolve_backend("torch").fell_back
    assert resolve_backend("onnxruntime").used == "onnxruntime"
    choice = resolve_backend("tensorrt")
    if not torch.cuda.is_available():
        assert choice.used == "onnxruntime" and choice.fell_back
        assert "backend 'tensorrt' requested, using 'onnxruntime'" in choice.log_line("backend")
    with pytest.raises(ValueError):
        resolve_backend("openvino")
    device = resolve_device("cuda")
    assert device.used == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").used == "cpu"


def test_core_never_imports_rclpy() -> None:
    import subprocess
    import sys

    code = "import sys, imgcomp.nodes_core; assert 'rclpy' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent).returncode == 0


def test_decoder_preload(factory) -> None:
    decoder = DecoderCore(factory, model=None)
    assert decoder.loaded_models == []
    decoder.preload("factorized-mse")
    assert decoder.loaded_models == ["factorized-mse"]
    with pytest.raises(ValueError, match="unknown model"):
        decoder.preload("no-such-model")


def test_set_cpu_threads() -> None:
    from imgcomp.nodes_core import set_cpu_threads

    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == "torch CPU threads: 1 (torch_threads=1)"
        assert torch.get_num_threads() == 1
        assert "torch's default" in set_cpu_threads(0) and torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            set_cpu_threads(-1)
    finally:
        torch.set_num_threads(before)
