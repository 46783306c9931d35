"""The closed-table rANS path: lossless on real latents, bounded on any bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgcomp.bitstream import BitstreamError
from imgcomp.models import entropy_coding
from imgcomp.models.registry import load_model


@pytest.fixture(scope="module")
def hyperprior():
    return load_model("hyperprior-mse")[0].eval()


@pytest.fixture(scope="module")
def y_tables(hyperprior):
    return entropy_coding.closed_tables(hyperprior.gaussian_conditional)


def test_closed_tables_give_the_escape_slot_no_mass(y_tables):
    for cdf, size in zip(y_tables.cdfs, y_tables.sizes):
        assert len(cdf) == size and cdf[0] == 0 and cdf[-1] == 1 << 16
        assert cdf[size - 2] == cdf[size - 1]  # the escape slot has frequency 0
        assert all(b > a for a, b in zip(cdf[: size - 2], cdf[1 : size - 1]))  # every value codable


def test_round_trip_is_exact_and_clamps_outliers(y_tables):
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, y_tables.count, size=(8, 12, 12))
    values = np.round(rng.normal(0, 3, size=indexes.shape) * (1 + indexes / 8)).astype(np.int64)
    values[0, 0, 0] = 10**6  # far outside every table: clamped, not escaped
    clamped = entropy_coding.clamp_to_tables(values, indexes, y_tables)
    assert clamped[0, 0, 0] == y_tables.highest[indexes[0, 0, 0]]
    data = entropy_coding.encode(clamped, indexes, y_tables)
    assert np.array_equal(entropy_coding.decode(data, indexes, y_tables), clamped)
    with pytest.raises(ValueError, match="clamp"):
        entropy_coding.encode(values, indexes, y_tables)


def test_worst_case_valid_string_is_within_the_length_bound(y_tables):
    """Every symbol at its table's rarest value: the longest string N symbols can make."""
    n = 4000
    indexes = np.arange(n) % y_tables.count
    rarest = []
    for i in indexes:
        cdf = np.asarray(y_tables.cdfs[i])
        freqs = np.diff(cdf)[: y_tables.sizes[i] - 2]
        rarest.append(y_tables.offsets[i] + int(np.argmin(freqs)))
    data = entropy_coding.encode(np.asarray(rarest), indexes, y_tables)
    assert len(data) <= entropy_coding.max_string_bytes(n)
    assert len(data) > entropy_coding.max_string_bytes(n) // 2  # the bound is not loose by orders


@pytest.mark.parametrize("length", [0, 4, 5, 7, 9, 10_000_000])
def test_impossible_string_lengths_are_refused_before_native_code(y_tables, length):
    with pytest.raises(BitstreamError, match="entropy-coded string"):
        entropy_coding.decode(b"\xff" * length, np.zeros(16, dtype=np.int64), y_tables)


def test_out_of_range_table_indexes_are_refused(y_tables):
    with pytest.raises(BitstreamError, match="table index"):
        entropy_coding.decode(b"\x00" * 8, np.full(4, y_tables.count), y_tables)


def test_any_bytes_decode_to_in_range_values(y_tables):
    """Garbage of a valid length decodes (that is what a forger gets) and every value lies in
    its table's range: the escape path, with its unbounded reads, never ran."""
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, y_tables.count, size=5000)
    for length in (8, 12, 64, 4096):
        for fill in (b"\xff", b"\x00", None):
            data = rng.bytes(length) if fill is None else fill * length
            values = entropy_coding.decode(data, indexes, y_tables)
            assert (values >= y_tables.lowest[indexes]).all() and (values <= y_tables.highest[indexes]).all()


def test_tables_follow_the_model_after_update(hyperprior):
    before = entropy_coding.closed_tables(hyperprior.entropy_bottleneck)
    assert entropy_coding.closed_tables(hyperprior.entropy_bottleneck) is before  # cached
    clone = load_model("hyperprior-mse")[0]
    with torch.no_grad():
        clone.entropy_bottleneck.quantiles.add_(0.5)
    clone.update(force=True)
    assert entropy_coding.closed_tables(clone.entropy_bottleneck).cdfs != before.cdfs


def test_phased_decoding_reads_one_string_in_dependent_calls(y_tables):
    """One `encode` over two phases' symbols; the second phase's indexes are computed from the
    first phase's decoded values (context modelling), and both come back exactly."""
    rng = np.random.default_rng(2)
    first_idx = rng.integers(0, y_tables.count, size=300)
    first = entropy_coding.clamp_to_tables(rng.integers(-3, 4, size=300), first_idx, y_tables)
    second_idx = np.abs(first) * 3 % y_tables.count  # depends on the first phase's values
    second = entropy_coding.clamp_to_tables(rng.integers(-6, 7, size=300), second_idx, y_tables)
    data = entropy_coding.encode(np.concatenate([first, second]), np.concatenate([first_idx, second_idx]), y_tables)
    decoder = entropy_coding.PhasedDecoder(data, 600)
    got_first = decoder.decode(first_idx, y_tables)
    assert np.array_equal(got_first, first)
    assert np.array_equal(decoder.decode(np.abs(got_first) * 3 % y_tables.count, y_tables), second)
    with pytest.raises(BitstreamError, match="more symbols"):
        decoder.decode(np.zeros(1, dtype=np.int64), y_tables)


def test_phased_decoding_is_bounded_on_any_bytes(y_tables):
    with pytest.raises(BitstreamError, match="longer than"):
        entropy_coding.PhasedDecoder(b"\xff" * 4096, 16)
    with pytest.raises(BitstreamError, match="rANS words"):
        entropy_coding.PhasedDecoder(b"\xff" * 6, 16)
    rng = np.random.default_rng(3)
    for fill in (b"\xff", b"\x00", None):
        data = rng.bytes(64) if fill is None else fill * 64
        decoder = entropy_coding.PhasedDecoder(data, 5000)
        for _ in range(5):
            indexes = rng.integers(0, y_tables.count, size=1000)
            values = decoder.decode(indexes, y_tables)
            assert (values >= y_tables.lowest[indexes]).all() and (values <= y_tables.highest[indexes]).all()


def test_clamp_and_encode_is_clamp_then_encode(y_tables):
    rng = np.random.default_rng(3)
    indexes = rng.integers(0, y_tables.count, size=(4, 9, 11))
    values = rng.integers(-400, 400, size=indexes.shape)  # outliers included
    clamped = entropy_coding.clamp_to_tables(values, indexes, y_tables)
    data, coded = entropy_coding.clamp_and_encode(values, indexes, y_tables)
    assert data == entropy_coding.encode(clamped, indexes, y_tables)
    assert np.array_equal(coded, clamped) and coded.shape == values.shape
    decoded = entropy_coding.decode(data, indexes, y_tables)
    assert np.array_equal(decoded, clamped) and decoded.dtype == np.int32


def test_integer_prior_is_kept_until_a_weight_changes(hyperprior):
    first = hyperprior.integer_prior()
    assert hyperprior.integer_prior() is first
    symbols = torch.ones(1, hyperprior.arch.hyper_channels, 2, 3, dtype=torch.float64)
    before = first.scales(symbols)
    with torch.no_grad():
        hyperprior.h_s[0].weight.mul_(2)  # an in-place change, as an optimizer step makes
    try:
        changed = hyperprior.integer_prior()
        assert changed is not first and not torch.equal(changed.scales(symbols), before)
    finally:
        with torch.no_grad():
            hyperprior.h_s[0].weight.div_(2)
    assert torch.equal(hyperprior.integer_prior().scales(symbols), before)


@pytest.mark.parametrize("name", ["factorized-mse", "hyperprior-mse", "hyperprior-msssim"])
def test_shipped_bottleneck_tables_cover_every_level_of_real_images(name: str, real_images) -> None:
    """A value outside its table is clamped (lost, not coded): on real photos no level may need that.
    factorized-mse's tables once came from quantiles its aux loss had not fitted (aux loss 3176)
    and clamped 0.6 % of the top level's values; `registry.fit_bottleneck_ranges` fixed them."""
    from compressai.entropy_models import EntropyBottleneck

    model, _ = load_model(name)
    bottleneck = next(m for m in model.modules() if isinstance(m, EntropyBottleneck))
    tables = entropy_coding.closed_tables(bottleneck)
    medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1).double()
    indexes_for = lambda shape: np.broadcast_to(np.arange(tables.count)[:, None, None], shape)  # noqa: E731
    for image in real_images.values():
        h, w = (s // 64 * 64 for s in image.shape[:2])
        x = torch.from_numpy(np.ascontiguousarray(image[:h, :w])).permute(2, 0, 1)[None].float() / 255
        for level in range(model.levels):
            with torch.no_grad():
                y, z = model.analyse_for_coding(x, level)
            coded = (z if z is not None else y)[0].double()
            symbols = torch.round(coded - medians[0]).to(torch.int64).numpy()
            clamped = entropy_coding.clamp_to_tables(symbols, indexes_for(symbols.shape), tables)
            assert np.array_equal(clamped, symbols), f"level {level + 1}: {(clamped != symbols).mean():.2%} of values clamped"
