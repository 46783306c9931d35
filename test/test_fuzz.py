"""Forged payloads (correct CRCs) never crash, hang or exhaust the decoder.

Every case runs in a child process (`imgcomp.eval.fuzz.FuzzRunner`), so a segfault fails the test
instead of killing pytest. `python -m imgcomp fuzz --cases 50000` is the long run.
"""

from __future__ import annotations

import os
import random
import signal
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcomp.bitstream import FRAME_KEY, Frame, FrameHeader, pack_fields
from imgcomp.defaults import CLASSICAL_MODELS
from imgcomp.eval.fuzz import FAILURES, FuzzRunner, forge, listed_cases, model_facts

MODELS = ["hyperprior-mse", "factorized-mse", "cae8-ssim", "ae-ssim"]
CAP = 1024 * 1024  # keeps each decode well under a second on a 2-core CPU


@pytest.fixture(scope="module")
def facts():
    return model_facts(MODELS)


@pytest.fixture(scope="module")
def runner():
    with FuzzRunner(max_output_pixels=CAP, timeout_s=30.0, max_rss_mb=2048) as r:
        yield r


def test_the_payloads_that_crashed_the_decoder_are_rejected_or_decoded(facts, runner):
    outcomes = {name: runner.run_one(payload)[0] for name, payload in listed_cases(facts)}
    assert not {n: o for n, o in outcomes.items() if o in FAILURES}
    # over this runner's cap, refused from the header; the rest reach the stream checks
    assert outcomes["hyperprior-mse 2048x2048, empty streams"] == "too_large"
    assert outcomes["hyperprior-mse 256x256, 15-byte streams"] == "malformed_payload"
    assert outcomes["factorized-mse 512x512, empty streams"] == "malformed_payload"
    # shortest valid-length garbage reaches the rANS decoder and yields an image
    assert outcomes["hyperprior-mse 512x512, 8-byte streams"] == "decoded"
    assert outcomes["factorized-mse 512x512, 8-byte streams"] == "decoded"
    # a real frame's streams relabelled as huge: refused from the header, nothing allocated
    assert outcomes["hyperprior-mse real z stream relabelled 8192x8192"] == "too_large"
    assert outcomes["cae8-ssim real 48x64 streams relabelled 4096x4096"] == "too_large"


@pytest.mark.slow
def test_the_64_byte_2048_payload_is_refused_under_the_default_cap(facts):
    """The issue's first case (2048x2048 hyperprior-mse, empty streams) at the library default
    cap (4K UHD), where it gets past the size check to the stream checks."""
    cases = dict(listed_cases(facts))
    with FuzzRunner(max_output_pixels=3840 * 2160, timeout_s=30.0) as r:
        for name in ("hyperprior-mse 2048x2048, empty streams", "hyperprior-mse 2048x2048, 15-byte streams",
                     "factorized-mse 2048x2048, empty streams"):
            assert r.run_one(cases[name])[0] == "malformed_payload", name


def test_random_forgeries_never_fail(facts, runner):
    rng = random.Random(1234)
    outcomes = [runner.run_one(forge(rng, facts))[0] for _ in range(300)]
    assert not [o for o in outcomes if o in FAILURES]
    assert outcomes.count("decoded") >= 30  # the forgeries do reach the entropy decoder


def test_random_forgeries_of_the_classical_codecs_never_fail(runner):
    """Damaged JPEG/WebP/AVIF/JPEG XL files at their real size reach the libraries; the rest are
    refused from the container's or the file's own header."""
    facts = model_facts(list(CLASSICAL_MODELS))
    rng = random.Random(99)
    outcomes = [runner.run_one(forge(rng, facts))[0] for _ in range(300)]
    assert not [o for o in outcomes if o in FAILURES]
    assert outcomes.count("decoded") >= 20 and outcomes.count("malformed_payload") >= 100


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model_index=st.integers(0, len(MODELS) - 1),
    height=st.one_of(st.integers(1, 300), st.sampled_from([1024, 1025, 4096])),
    width=st.one_of(st.integers(1, 300), st.sampled_from([1024, 1025, 4096])),
    quality=st.integers(0, 255),
    channels=st.sampled_from([1, 3]),
    streams=st.lists(st.binary(max_size=600), min_size=0, max_size=3),
    word_aligned=st.booleans(),
)
def test_hypothesis_forged_headers_and_streams(facts, runner, model_index, height, width, quality, channels, streams, word_aligned):
    m = facts[model_index]
    if word_aligned:
        streams = [s + bytes(-len(s) % 4) for s in streams]
    d = m.downsampling
    header = FrameHeader(
        m.name, m.model_hash, height, width, channels, "rgb8", quality, FRAME_KEY, 0, 0, (-(-height // d), -(-width // d))
    )
    outcome, seconds, rss = runner.run_one(pack_fields(Frame(header, tuple(streams))))
    assert outcome not in FAILURES, (outcome, seconds, rss)


@pytest.mark.slow
def test_the_runner_reports_a_segfault_as_a_crash(facts):
    """The harness itself: a child killed by SIGSEGV mid-decode is a crash, and the next case runs."""
    m = next(f for f in facts if f.name == "hyperprior-mse")
    slow = pack_fields(Frame(
        FrameHeader(m.name, m.model_hash, 1024, 1024, 3, "rgb8", 1, FRAME_KEY, 0, 0, (16, 16)), (b"\xff" * 8, b"\xff" * 8)
    ))
    with FuzzRunner(max_output_pixels=CAP, timeout_s=60.0) as r:
        r.run_one(listed_cases(facts)[0][1])  # child started
        pid = r._proc.pid  # noqa: SLF001 - the test kills the child on purpose
        timer = threading.Timer(0.3, os.kill, (pid, signal.SIGSEGV))
        timer.start()
        assert r.run_one(slow)[0] == "crash"
        timer.join()
        assert r.run_one(slow)[0] == "decoded"
