"""Electrical images: the sparse-product sum equals the per-spike loop; peaks at the somas."""

import numpy as np
import pytest
from scipy import signal

from nmbatch.mea.eimage import add_windows, electrical_images, select_spikes
from nmbatch.mea.filtering import highpass_sos
from nmbatch.mea.synthetic import SensorSynth, UnitModel, poisson_spikes

FS = 20_000.0
BEFORE, AFTER = 10, 40


def test_add_windows_equals_a_loop_over_spikes():
    rng = np.random.default_rng(0)
    block = rng.normal(size=(600, 7)).astype(np.float32)
    offsets = np.sort(rng.integers(BEFORE, 600 - AFTER, 80))
    owners = rng.integers(0, 5, 80)
    sums = np.zeros((5, BEFORE + AFTER, 7))
    add_windows(sums, block, offsets, owners, BEFORE)
    expected = np.zeros_like(sums)
    for s, u in zip(offsets, owners, strict=True):
        expected[u] += block[s - BEFORE : s + AFTER]
    np.testing.assert_allclose(sums, expected, rtol=1e-5, atol=1e-5)


def test_select_spikes_keeps_full_windows_and_the_first_ones():
    spikes = np.array([3, 10, 50, 900, 960, 961, 999])
    assert select_spikes(spikes, 1000, BEFORE, AFTER, 10).tolist() == [10, 50, 900, 960]
    assert select_spikes(spikes, 1000, BEFORE, AFTER, 2).tolist() == [10, 50]


N_USED = 5_500


@pytest.fixture(scope="module")
def recording():
    """0.3 s of synthetic sensor data with three units (one silent)."""
    rng = np.random.default_rng(5)
    n = 6_000
    units = []
    for i, (row, col) in enumerate([(12, 20), (40, 33), (55, 9)]):
        unit = UnitModel(i + 1, row, col, 120.0, 1.2, (0, 0), 1)
        if i < 2:
            unit.spikes = poisson_spikes(rng, np.array([0, n]), np.array([60.0]), n)
        units.append(unit)
    return SensorSynth(n, units, seed=3), units


@pytest.fixture(scope="module")
def reference(recording):
    """The first N_USED samples filtered at once with scipy, then a loop over spikes."""
    data, units = recording
    raw = data[0:N_USED].reshape(N_USED, -1)
    filtered = signal.sosfiltfilt(highpass_sos(100, 2, FS), raw, axis=0)
    out = np.zeros((len(units), BEFORE + AFTER, raw.shape[1]))
    for i, unit in enumerate(units):
        spikes = select_spikes(unit.spikes, N_USED, BEFORE, AFTER, 10_000)
        for t in spikes:
            out[i] += filtered[t - BEFORE : t + AFTER]
        out[i] /= max(spikes.size, 1)
    return out


@pytest.mark.parametrize("chunk", [1_500, 8_192])
def test_electrical_images_equal_the_straightforward_computation(recording, reference, chunk):
    data, units = recording
    spikes = [u.spikes for u in units]
    sos = highpass_sos(100, 2, FS)
    images, counts = electrical_images(
        lambda a, b: data[a:b], N_USED, spikes, sos, BEFORE, AFTER, 10_000, chunk
    )
    assert images.shape == (3, BEFORE + AFTER, 65 * 65)
    assert counts.tolist() == [select_spikes(s, N_USED, BEFORE, AFTER, 10_000).size for s in spikes]
    assert counts[2] == 0 and not images[2].any()
    np.testing.assert_allclose(images, reference, atol=1e-3 * np.abs(reference).max())


def test_eimage_peaks_on_each_soma(recording):
    data, units = recording
    images, _ = electrical_images(
        lambda a, b: data[a:b],
        len(data),
        [u.spikes for u in units[:2]],
        highpass_sos(100, 2, FS),
        BEFORE,
        AFTER,
        10_000,
    )
    for unit, image in zip(units, images, strict=False):
        amplitude = np.ptp(image.reshape(BEFORE + AFTER, 65, 65), axis=0)
        assert np.unravel_index(amplitude.argmax(), amplitude.shape) == (unit.row - 1, unit.col - 1)
        trough = image.reshape(BEFORE + AFTER, 65, 65)[:, unit.row - 1, unit.col - 1].argmin()
        assert trough == BEFORE
