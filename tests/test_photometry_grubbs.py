"""The compiled Grubbs loop counts the outliers iblphotometry's detect_outliers finds."""

from __future__ import annotations

import numpy as np
import pytest
from iblphotometry.metrics import n_outliers
from iblphotometry.processing import grubbs_test

from nmbatch.photometry import grubbs
from nmbatch.photometry.grubbs import after_whole_signal_n_outliers, block_counts, n_outliers_rows

ALPHA = 0.0005


def blocks(kind: str, rng: np.random.Generator, n: int = 40, size: int = 1000) -> np.ndarray:
    if kind == "heavy tails":
        return rng.standard_t(2, size=(n, size)) * 1e-3 + 0.05
    if kind == "spikes":
        out = rng.normal(size=(n, size))
        out[:, rng.integers(0, size, 30)] += 40.0
        return out
    if kind == "quantised":  # few distinct levels: ties everywhere
        return np.round(rng.normal(size=(n, size)) * 2) / 2
    if kind == "constant":
        return np.full((n, size), 0.1)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["heavy tails", "spikes", "quantised", "constant"])
@pytest.mark.parametrize("size", [1000, 999, 7, 3, 2, 1])
def test_block_counts_equal_iblphotometry(kind, size):
    data = blocks(kind, np.random.default_rng(size), size=size)
    expected = [len(grubbs_test(row.copy(), alpha=ALPHA)) for row in data]
    np.testing.assert_array_equal(block_counts(data, ALPHA, distinct=False), expected)


@pytest.mark.parametrize("length", [3600, 3599, 2000, 999])
def test_rows_equal_n_outliers(length):
    rng = np.random.default_rng(length)
    data = rng.standard_t(3, size=(12, length))
    data[:, ::97] += 25.0
    expected = [n_outliers(row.copy(), alpha=ALPHA) for row in data]
    np.testing.assert_array_equal(n_outliers_rows(data, 1000, ALPHA), expected)


def test_undecided_blocks_go_through_numpy(monkeypatch):
    data = blocks("spikes", np.random.default_rng(1))
    monkeypatch.setattr(
        grubbs, "_block_counts", lambda b, g: (np.zeros(len(b), int), np.zeros(len(b), bool))
    )
    expected = [len(grubbs_test(row.copy(), alpha=ALPHA)) for row in data]
    np.testing.assert_array_equal(block_counts(data, ALPHA, distinct=True), expected)


def test_the_whole_signal_edit_is_iblphotometry_own():
    rng = np.random.default_rng(2)
    values = rng.normal(size=3900)
    values[[3100, 3500]] = [30.0, -30.0]
    edited = values.copy()
    n_outliers(edited, alpha=ALPHA)  # in place on its last partial block, as qc_signals calls it
    np.testing.assert_array_equal(after_whole_signal_n_outliers(values, 1000, ALPHA), edited)
    assert not np.array_equal(edited, values)
    clean = rng.normal(size=3000)  # no partial block: nothing to edit
    assert after_whole_signal_n_outliers(clean, 1000, ALPHA) is clean
