"""Frame times, sections, trials and dense-noise STAs against the generator's ground truth."""

import numpy as np
import pytest

from nmbatch.mea.demo import FLASH_CONFIG, NOISE_MOVIE, demo_playlist
from nmbatch.mea.frames import (
    detect_frame_times,
    frames_to_samples,
    movie_frames,
    percentile_by_counting,
    spikes_in_windows,
    trial_frames,
)
from nmbatch.mea.sta import dense_noise_sta, spike_frames
from nmbatch.mea.synthetic import analog_channels, build_model
from nmbatch.mea.synthetic_visual import RF_LAG_FRAMES, trial_starts


@pytest.fixture(scope="module")
def model():
    return build_model(7, demo_playlist(150, bar_repeats=0), n_units=4)


@pytest.mark.parametrize("chunk", [997, 1 << 20])
def test_percentile_by_counting_equals_numpy(chunk):
    x = np.random.default_rng(0).integers(-50, 3000, 20_011).astype(np.int32)
    got = percentile_by_counting(lambda a, b: x[a:b], x.size, 99.9, chunk)
    assert got == pytest.approx(np.percentile(x, 99.9))


@pytest.mark.parametrize("chunk", [1_000, 1 << 20])
def test_frame_times_are_the_planted_frames(model, chunk):
    pulses = analog_channels(model, 7)[1]
    frames = detect_frame_times(lambda a, b: pulses[a:b], pulses.size, 99.9, 0.1, 4, chunk)
    np.testing.assert_array_equal(frames, model.frame_times)


def test_a_flat_pulse_channel_is_an_error():
    with pytest.raises(ValueError, match="flat"):
        detect_frame_times(lambda a, b: np.zeros(b - a), 1000, 99.9, 0.1, 4)


def test_frames_to_samples_extends_one_frame_past_the_end():
    times = np.array([100, 433, 767, 1100])
    assert frames_to_samples([0, 3, 4], times).tolist() == [100, 1100, 1433]
    with pytest.raises(ValueError, match="beyond"):
        frames_to_samples([5], times)


def test_movies_play_back_to_back():
    assert movie_frames(["a", "b", "a"], {"a": 10, "b": 5}) == [
        ("a", 0, 10),
        ("b", 10, 15),
        ("a", 15, 25),
    ]


def test_trial_frames_follow_groups_and_gaps():
    windows = trial_frames(FLASH_CONFIG, 66)
    assert windows.tolist() == [[6, 18], [18, 30], [36, 48], [48, 60]]
    assert windows[:, 0].tolist() == trial_starts(FLASH_CONFIG).tolist()
    with pytest.raises(ValueError, match="after the movie"):
        trial_frames(FLASH_CONFIG, 59)


def test_spikes_in_windows_splits_by_trial():
    spikes = np.array([1, 5, 9, 10, 20, 25])
    picked, offsets = spikes_in_windows(spikes, np.array([[0, 10], [10, 21], [30, 40]]))
    assert offsets.tolist() == [0, 3, 5, 5]
    assert picked.tolist() == [1, 5, 9, 10, 20]


def _frames(model, unit, first, n):
    end = model.frame_times[first + n] if first + n < model.frame_times.size else np.inf
    return spike_frames(unit.spikes, model.frame_times, first, n, end)


def test_sta_equals_averaging_frame_stacks(model):
    movie = model.movies[NOISE_MOVIE]
    first = model.movie_start[NOISE_MOVIE]
    frames = [_frames(model, u, first, movie.shape[0]) for u in model.units]
    sta, counts = dense_noise_sta(frames, movie, 60)
    for u, f in enumerate(frames):
        usable = f[f >= 59]
        expected = np.mean([movie[m - 59 : m + 1] for m in usable], axis=0)
        assert counts[u] == usable.size
        np.testing.assert_allclose(sta[u], expected, rtol=1e-5)


def test_sta_peaks_at_each_planted_receptive_field():
    long_noise = [m for m in demo_playlist(1200, bar_repeats=0) if m.kind == "noise"]
    model = build_model(11, long_noise, n_units=6)
    movie = model.movies[NOISE_MOVIE]
    frames = [_frames(model, u, 0, movie.shape[0]) for u in model.units]
    sta, counts = dense_noise_sta(frames, movie, 60)
    assert (counts > 100).all()
    for unit, average in zip(model.units, sta, strict=True):
        lag, y, x = np.unravel_index(np.abs(average - 127.5).argmax(), average.shape)
        assert max(abs(y - unit.rf_center[0]), abs(x - unit.rf_center[1])) <= 1.5
        assert lag == 59 - RF_LAG_FRAMES
        assert np.sign(average[lag, y, x] - 127.5) == unit.rf_sign


def test_spikes_outside_the_movie_are_not_used(model):
    movie = model.movies[NOISE_MOVIE]
    times = model.frame_times
    spikes = np.array([times[0] - 5, times[100] + 3, times[movie.shape[0]] + 3])
    assert spike_frames(spikes, times, 0, movie.shape[0], times[movie.shape[0]]).tolist() == [
        -1,
        100,
        -1,
    ]
