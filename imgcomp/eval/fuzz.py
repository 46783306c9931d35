"""Forged payloads against the decoder, each decoded in a child process with a time and memory budget.

A forger can recompute the CRC, so every case here carries a correct one and reaches the entropy
decoder. `forge(rng, models)` makes one case: header fields at and beyond their limits, streams
that are empty, short, random, all ones, too long, or real streams of a real frame relabelled to
another size or model. `FuzzRunner` decodes cases through `DecoderCore.process` (the node's
path, never raising by contract) in a long-lived child process; the parent watches each case:
a child killed by a signal is a *crash*; a case that uses more than `timeout_s` of CPU time, or
gives no answer within `wall_limit_s`, is a *hang* (CPU time, because on a shared machine wall
time also measures the neighbours); a child whose peak RSS passes `max_rss_mb` is a *memory*
failure, and an exception out of the core a *raised*. After a crash or hang the child is
replaced and the run goes on.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgcomp.defaults import DEFAULT_MODEL
from imgcomp.bitstream import FRAME_KEY, FRAME_PREDICTED, MAX_SIDE, Frame, FrameHeader, pack_fields

FAILURES = ("crash", "hang", "memory", "raised")
_SIZES_SMALL = (1, 2, 3, 15, 16, 17, 31, 48, 63, 64, 65, 96, 127, 128)
_SIZES_MEDIUM = (200, 255, 256, 257, 480, 511, 512, 640)
_SIZES_LARGE = (1080, 1920, 2048, 3840, 4096, 8192, MAX_SIDE, MAX_SIDE + 1, 2**32 - 1)


@dataclass(frozen=True)
class ModelFacts:
    """What forging needs to know about one shipped model (gathered once, in the parent)."""

    name: str
    model_hash: str
    levels: int
    downsampling: int  # 0: a classical codec (imgcomp.classical), whose payloads carry no latent
    n_streams: int
    real_streams: tuple[bytes, ...]  # the streams of a real 48x64 frame
    real_shape: tuple[int, int]  # its latent shape
    real_size: tuple[int, int] = (48, 64)


def model_facts(names: list[str]) -> list[ModelFacts]:
    from imgcomp.codec import Codec

    rng = np.random.default_rng(0)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    facts = []
    for name in names:
        codec = Codec(name)
        from imgcomp.bitstream import unpack

        frame = unpack(codec.encode(image, quality=1))
        downsampling = getattr(getattr(codec, "net", None), "downsampling", 0)
        facts.append(
            ModelFacts(
                name, codec.model_hash, codec.levels, downsampling, len(frame.streams), frame.streams,
                frame.header.latent_shape,
            )
        )
    return facts


def _side(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.85:
        return rng.choice(_SIZES_SMALL)
    if r < 0.99:
        return rng.choice(_SIZES_MEDIUM)
    return rng.choice(_SIZES_LARGE)


def _stream(rng: random.Random, real: bytes, pixels: int = 64 * 64) -> bytes:
    kind = rng.randrange(14)
    if kind >= 12 and real:  # the real stream with a few bytes changed: same length, same framing
        data = bytearray(real)
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        return bytes(data)
    if kind >= 9:  # whole rANS words, few enough for any model at this size: reaches the coder
        words = rng.randrange(2, max(3, pixels // 1024))
        return rng.choice((rng.randbytes(4 * words), b"\xff" * (4 * words), bytes(4 * words)))
    if kind == 0:
        return b""
    if kind == 1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 16)))
    if kind == 2:
        return b"\xff" * (4 * rng.randrange(2, 64))
    if kind == 3:
        return b"\x00" * (4 * rng.randrange(2, 64))
    if kind == 4:
        return real
    if kind == 5:
        return real[: rng.randrange(len(real) + 1)]
    if kind == 6:
        return real + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
    if kind == 7:
        return rng.randbytes(4 * rng.randrange(2, 2048))
    return rng.randbytes(rng.randrange(0, 100_000))


def forge(rng: random.Random, models: list[ModelFacts]) -> bytes:
    """One forged payload with a correct CRC: 60 % with every header field valid (only the
    streams and the size are forged, so they reach the entropy decoder), 40 % anything goes."""
    if rng.random() < 0.6:
        return _forge_streams(rng, _pick(rng, models))
    m = _pick(rng, models)
    if rng.random() < 0.7:
        height, width = _side(rng), _side(rng)
    else:  # the real frame's own size: streams then parse as far as the entropy decoder
        height, width = 48, 64
    latent = tuple(min(65535, v) for v in _latent(m, height, width))
    if rng.random() < 0.05:
        latent = (rng.randrange(0, 65536), rng.randrange(0, 65536))
    n_streams = m.n_streams if rng.random() < 0.9 else rng.randrange(0, 6)
    real = list(m.real_streams) + [b""] * max(0, n_streams - len(m.real_streams))
    streams = tuple(_stream(rng, real[i]) for i in range(n_streams))
    model_hash = m.model_hash if rng.random() < 0.95 else f"{rng.getrandbits(64):016x}"
    name = m.name if rng.random() < 0.97 else rng.choice(["nope", "", "x" * 255, "hyperprior-mse\x00"])
    header = FrameHeader(
        model=name,
        model_hash=model_hash,
        height=min(height, 2**32 - 1),
        width=min(width, 2**32 - 1),
        channels=rng.choice((0, 1, 3, 3, 3, 255)),
        encoding=rng.choice(("rgb8", "bgr8", "mono8", "mono16", "rgba8", "32FC1", "", "x" * 255)),
        quality=rng.choice((0, 1, 1, 2, 3, 6, 7, 255)) if m.levels > 1 else rng.choice((0, 1, 1, 1, 2, 255)),
        frame_type=FRAME_KEY if rng.random() < 0.95 else FRAME_PREDICTED,
        frame_number=rng.getrandbits(32),
        reference_frame_number=rng.getrandbits(32),
        latent_shape=latent,
    )
    return pack_fields(Frame(header, streams))


def _pick(rng: random.Random, models: list[ModelFacts]) -> ModelFacts:
    """Entropy-coded models (the ones with a native decoder behind them) three times as often."""
    coded = [m for m in models if m.levels > 1]
    return rng.choice(coded if coded and rng.random() < 0.75 else models)


def _latent(m: ModelFacts, height: int, width: int) -> tuple[int, int]:
    d = m.downsampling
    return (-(-height // d), -(-width // d)) if d else (0, 0)


def _classical_file(rng: random.Random, real: bytes) -> bytes:
    """The real file of a classical codec, damaged where its own decoder or our header checks
    must cope: bytes changed in its headers or anywhere, cut short, spliced, or its size fields
    (any 16- or 32-bit word) set to extremes."""
    data = bytearray(real)
    kind = rng.randrange(6)
    if kind == 0:  # a few bytes in the first 64 (box, chunk and marker headers)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(min(64, len(data)))] = rng.getrandbits(8)
    elif kind == 1:  # anywhere
        for _ in range(rng.randrange(1, 9)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
    elif kind == 2:
        return bytes(data[: rng.randrange(len(data))])
    elif kind == 3:  # a stretch repeated or random bytes spliced in
        at = rng.randrange(len(data))
        piece = bytes(data[at : at + rng.randrange(1, 256)]) if rng.random() < 0.5 else rng.randbytes(rng.randrange(1, 256))
        return bytes(data[:at]) + piece + bytes(data[at:])
    else:  # a header word set to 0, 1 or all ones (sizes, lengths, counts)
        width = rng.choice((2, 4))
        at = rng.randrange(max(1, min(200, len(data) - width)))
        data[at : at + width] = rng.choice((b"\x00", b"\x01", b"\xff")) * width
    return bytes(data)


def _forge_streams(rng: random.Random, m: ModelFacts) -> bytes:
    if not m.downsampling and rng.random() < 0.7:  # a classical file at its real size: reaches the library
        stream = _classical_file(rng, m.real_streams[0])
        return pack_fields(Frame(_valid_header(m, *m.real_size, rng.randrange(1, m.levels + 1)), (stream,)))
    height, width = (_side(rng), _side(rng)) if rng.random() < 0.8 else (48, 64)
    height, width = min(height, MAX_SIDE), min(width, MAX_SIDE)
    streams = tuple(_stream(rng, s, height * width) for s in m.real_streams)
    return pack_fields(Frame(_valid_header(m, height, width, rng.randrange(1, m.levels + 1)), streams))


def _valid_header(m: ModelFacts, height: int, width: int, quality: int) -> FrameHeader:
    return FrameHeader(m.name, m.model_hash, height, width, 3, "rgb8", quality, FRAME_KEY, 0, 0, _latent(m, height, width))


def listed_cases(models: list[ModelFacts]) -> list[tuple[str, bytes]]:
    """The forgeries that crashed or exhausted the decoder before (issue: 'No payload may crash')."""
    by_name = {m.name: m for m in models}
    cases = []
    for m in models:
        empty = tuple(b"" for _ in m.real_streams)
        for side in (256, 512, 2048):
            cases.append((f"{m.name} {side}x{side}, empty streams", pack_fields(Frame(_valid_header(m, side, side, 1), empty))))
            short = tuple(b"\x01" * 15 for _ in m.real_streams)
            cases.append((f"{m.name} {side}x{side}, 15-byte streams", pack_fields(Frame(_valid_header(m, side, side, 1), short))))
            words = tuple(b"\xff" * 8 for _ in m.real_streams)  # the shortest length a rANS string can have
            cases.append((f"{m.name} {side}x{side}, 8-byte streams", pack_fields(Frame(_valid_header(m, side, side, 1), words))))
        for side in (4096, 8192, MAX_SIDE):
            cases.append((f"{m.name} real 48x64 streams relabelled {side}x{side}", pack_fields(Frame(_valid_header(m, side, side, 1), m.real_streams))))
    if DEFAULT_MODEL in by_name:  # the hyperprior: its z stream alone
        m = by_name[DEFAULT_MODEL]
        z_only = (b"", m.real_streams[-1])
        cases.append((f"{DEFAULT_MODEL} real z stream relabelled 8192x8192", pack_fields(Frame(_valid_header(m, 8192, 8192, 1), z_only))))
    return cases


# ------------------------------------------------------------------------------ the child process
def fields_for(payload: bytes) -> Any:
    """The CompressedFeatures fields a consistent forger would send with `payload` (its own
    header's values, so the payload gets past the field check to the decoder)."""
    from imgcomp.bitstream import BitstreamError, unpack
    from imgcomp.stream.fields import FeaturesFields

    try:
        h = unpack(payload).header
    except BitstreamError:
        return FeaturesFields(payload, "", "", 0, 0, 0, "")
    return FeaturesFields(
        payload, h.model, h.model_hash, h.quality, h.height, h.width, h.encoding, h.frame_type, h.frame_number,
        h.reference_frame_number,
    )


def _child(conn: Any, max_output_pixels: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from imgcomp.stream.decoder_core import DecoderCore
    from imgcomp.stream.rejections import Rejection

    core = DecoderCore(model=None, max_output_pixels=max_output_pixels)  # the node default: 3 models kept loaded
    conn.send(("ready", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, 0.0))
    while True:
        payload = conn.recv()
        if payload is None:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before = usage.ru_utime + usage.ru_stime
        try:
            out = core.process(fields_for(payload))
            outcome = out.cause if isinstance(out, Rejection) else "decoded"
        except Exception as exc:  # noqa: BLE001 - the core must never raise: report it
            outcome = f"raised:{type(exc).__name__}: {exc}"
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send((outcome, usage.ru_maxrss // 1024, usage.ru_utime + usage.ru_stime - cpu_before))


@dataclass
class FuzzReport:
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: int = 0
    slowest_s: float = 0.0  # wall time
    slowest_cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def failure_count(self) -> int:
        return sum(self.outcomes[f] for f in FAILURES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "failures": self.failure_count,
            "outcomes": dict(sorted(self.outcomes.items())),
            "peak_rss_mb": self.peak_rss_mb,
            "slowest_case_s": round(self.slowest_s, 3),
            "slowest_case_cpu_s": round(self.slowest_cpu_s, 3),
            "wall_s": round(self.wall_s, 1),
            "failed_cases": self.failures[:50],
        }


class FuzzRunner:
    """Decodes payloads in a child process; see the module docstring."""

    def __init__(
        self, max_output_pixels: int, timeout_s: float = 10.0, max_rss_mb: int = 2048, threads: int = 1, wall_limit_s: float = 60.0
    ) -> None:
        self.max_output_pixels, self.timeout_s, self.max_rss_mb, self.threads = max_output_pixels, timeout_s, max_rss_mb, threads
        self.wall_limit_s = max(wall_limit_s, timeout_s)
        self.last_cpu_s = 0.0
        self._ctx = mp.get_context("spawn")  # a clean interpreter: no torch state shared with the parent
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child, args=(child, self.max_output_pixels, self.threads), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(300):
            raise RuntimeError("fuzz child did not start within 300 s")
        parent.recv()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(10)
        self._kill()

    def __enter__(self) -> "FuzzRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_one(self, payload: bytes) -> tuple[str, float, int]:
        """(outcome, wall seconds, child peak RSS in MB); the case's CPU seconds in `last_cpu_s`.
        Outcome: "decoded", a rejection cause, or a failure."""
        if self._proc is None:
            self._start()
        started = time.perf_counter()
        self._conn.send(payload)
        try:
            ready = self._conn.poll(self.wall_limit_s)
            message = self._conn.recv() if ready else None
        except (EOFError, OSError):
            message = None
        elapsed = time.perf_counter() - started
        if message is None:
            self._proc.join(0.5)
            outcome = "crash" if self._proc.exitcode is not None else "hang"
            self._kill()
            self.last_cpu_s = elapsed
            return outcome, elapsed, 0
        outcome, rss_mb, self.last_cpu_s = message
        if self.last_cpu_s > self.timeout_s:
            return "hang", elapsed, rss_mb
        if rss_mb > self.max_rss_mb:
            self._kill()  # the peak is monotonic in a process: start clean for the next case
            return "memory", elapsed, rss_mb
        if outcome.startswith("raised:"):
            return "raised", elapsed, rss_mb
        return outcome, elapsed, rss_mb


def run_fuzz(
    cases: int,
    seed: int = 0,
    models: list[str] | None = None,
    max_output_pixels: int = 1920 * 1080,
    timeout_s: float = 10.0,
    max_rss_mb: int = 2048,
    progress: bool = True,
) -> FuzzReport:
    from imgcomp.models.registry import available_models

    facts = model_facts(models or available_models())
    rng = random.Random(seed)
    report = FuzzReport()
    started = time.perf_counter()
    iterator: Any = range(cases)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="fuzz", unit="case")
    listed = listed_cases(facts)
    with FuzzRunner(max_output_pixels, timeout_s, max_rss_mb) as runner:
        for i in iterator:
            payload = listed[i][1] if i < len(listed) else forge(rng, facts)
            outcome, seconds, rss = runner.run_one(payload)
            report.cases += 1
            report.outcomes[outcome] += 1
            report.peak_rss_mb = max(report.peak_rss_mb, rss)
            report.slowest_s = max(report.slowest_s, seconds)
            report.slowest_cpu_s = max(report.slowest_cpu_s, runner.last_cpu_s)
            if outcome in FAILURES:
                report.failures.append({
                    "case": i, "outcome": outcome, "seconds": round(seconds, 3), "cpu_s": round(runner.last_cpu_s, 3),
                    "payload_hex": payload[:256].hex(),
                })
    report.wall_s = time.perf_counter() - started
    return report


def write_report(report: FuzzReport, out_dir: Any, command: str) -> None:
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {"command": command, **report.to_dict()}
    (out / "fuzz.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# Forged-payload fuzzing",
        "",
        f"`{command}`",
        "",
        f"{report.cases} cases, {report.failure_count} failures (crash, hang, memory, raised), "
        f"peak child RSS {report.peak_rss_mb} MB, slowest case {report.slowest_cpu_s:.2f} s of CPU "
        f"({report.slowest_s:.2f} s wall on a shared machine), {report.wall_s / 60:.1f} min.",
        "",
        "| outcome | cases |",
        "| --- | ---: |",
        *(f"| {k} | {v} |" for k, v in sorted(report.outcomes.items())),
        "",
    ]
    (out / "fuzz.md").write_text("\n".join(lines))
