"""Zero-phase filtering: equal to scipy's sosfiltfilt, whole or chunked."""

import numpy as np
import pytest
from scipy import signal

from nmbatch.mea.filtering import filtered_chunks, highpass_sos, settle_samples, zero_phase

FS = 20_000.0


@pytest.fixture(scope="module")
def raw():
    """Int16 data like sensor frames: offsets, a slow wobble, noise and a few sharp events."""
    rng = np.random.default_rng(1)
    n, channels = 12_345, 29
    t = np.arange(n)[:, None]
    x = rng.integers(-300, 300, channels) + 30 * np.sin(2 * np.pi * 7 * t / FS)
    x = x + rng.normal(0, 4, (n, channels))
    x[rng.integers(0, n, 40)] -= 150
    return np.rint(x).astype(np.int16)


def _scale(reference):
    return np.abs(reference).max()


@pytest.mark.parametrize(
    "sos",
    [
        highpass_sos(100, 2, FS),
        highpass_sos(300, 4, FS),
        signal.butter(2, 500, "lowpass", fs=FS, output="sos"),
    ],
    ids=["highpass2", "highpass4", "lowpass2"],
)
@pytest.mark.parametrize("n", [12_345, 1_000, 37])
def test_zero_phase_equals_sosfiltfilt(raw, sos, n):
    reference = signal.sosfiltfilt(sos, raw[:n], axis=0)
    result = zero_phase(sos, raw[:n])
    assert result.dtype == np.float32
    assert result.shape == reference.shape
    np.testing.assert_allclose(result, reference, atol=2e-5 * _scale(reference) + 1e-4)


def test_zero_phase_flattens_trailing_axes(raw):
    sos = highpass_sos(100, 2, FS)
    frames = raw[:, :25].reshape(-1, 5, 5)
    np.testing.assert_array_equal(zero_phase(sos, frames), zero_phase(sos, raw[:, :25]))


def test_zero_phase_needs_more_samples_than_its_padding():
    with pytest.raises(ValueError, match="more than 9 samples"):
        zero_phase(highpass_sos(100, 2, FS), np.zeros((9, 3), np.int16))


def test_settle_samples_bounds_the_impulse_response():
    sos = highpass_sos(100, 2, FS)
    n = settle_samples(sos, 1e-7)
    impulse = np.zeros(4 * n)
    impulse[0] = 1
    h = np.abs(signal.sosfilt(sos, impulse))
    assert h[n:].max() < 1e-7 * h.max() <= h[n - 1]


@pytest.mark.parametrize("chunk", [500, 2_048, 20_000])
def test_chunked_filtering_does_not_depend_on_the_chunk(raw, chunk):
    sos = highpass_sos(100, 2, FS)
    reference = signal.sosfiltfilt(sos, raw, axis=0)
    assembled = np.full(reference.shape, np.nan)
    for a, lo, block in filtered_chunks(lambda a, b: raw[a:b], len(raw), sos, chunk, 10, 40):
        assert lo == max(a - 10, 0)
        assert block.shape[0] == min(a + chunk + 40, len(raw)) - lo
        assembled[lo : lo + block.shape[0]] = block
    np.testing.assert_allclose(assembled, reference, atol=2e-5 * _scale(reference) + 1e-4)


def test_chunks_can_be_limited_to_given_starts(raw):
    sos = highpass_sos(100, 2, FS)
    seen = [
        a
        for a, _, _ in filtered_chunks(
            lambda a, b: raw[a:b], len(raw), sos, 1000, starts=[3000, 7000]
        )
    ]
    assert seen == [3000, 7000]
