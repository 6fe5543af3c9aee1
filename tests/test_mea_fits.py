"""The algorithms of steps 6, 7 and 11 on constructed inputs with known answers."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from nmbatch.mea.direction import selectivity
from nmbatch.mea.errors import InputError
from nmbatch.mea.moving_bar import load_moving_bar
from nmbatch.mea.receptive_field import analyse_sta
from nmbatch.mea.rf_fit import FitLimits, dog, fit_dog, fit_gaussian, gaussian
from nmbatch.mea.soma import smooth_trace, smooth_traces, soma_geometry
from nmbatch.mea.synthetic_visual import bar_coverage, moving_bar_config

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())
Y, X = np.mgrid[:15, :15].astype(float)


def test_smoothing_all_electrodes_at_once_equals_one_trace_at_a_time():
    image = np.random.default_rng(0).normal(0, 30, (50, 65, 65)).astype(np.float32)
    together = smooth_traces(image, PARAMS)
    for r, c in [(0, 0), (10, 40), (64, 64)]:
        np.testing.assert_allclose(
            together[:, r, c], smooth_trace(image[:, r, c], PARAMS), atol=1e-9
        )


def test_soma_centre_and_size_of_a_disk():
    rows, cols = np.mgrid[:65, :65]
    disk = (rows - 20) ** 2 + (cols - 41) ** 2 <= 9  # 29 electrodes
    trace = np.zeros(50)
    trace[10:13] = [-100, -60, -20]
    image = trace[:, None, None] * np.where(disk, 1.0, 0.02)[None]
    image[:, 20, 41] *= 1.2
    soma = soma_geometry(image.astype(np.float32), dict(PARAMS, soma_spatial_sigma=0.01))
    assert (soma.center_row, soma.center_col) == (20, 41)
    assert soma.area == 29 and (soma.size_x, soma.size_y) == (7, 7)
    assert soma.equivalent_diameter == pytest.approx(2 * np.sqrt(29 / np.pi))


def test_gaussian_fit_recovers_a_rotated_ellipse():
    truth = [40.0, 6.3, 8.6, 2.2, 1.1, 2.5, 3.0]
    image = gaussian(X, Y, *truth) + np.random.default_rng(1).normal(0, 1, X.shape)
    fit = fit_gaussian(image, (6, 9), FitLimits())
    assert fit.ok and fit.r_squared > 0.95
    v = fit.values
    assert (v["center_x"], v["center_y"]) == pytest.approx((6.3, 8.6), abs=0.1)
    assert (v["sigma_x"], v["sigma_y"]) == pytest.approx((2.2, 1.1), rel=0.08)
    assert v["angle"] == pytest.approx(2.5, abs=0.08) and v["amplitude"] == pytest.approx(
        40, rel=0.1
    )


def test_dog_fit_recovers_centre_and_surround():
    truth = [30.0, 6.0, 7.2, 6.8, 1.5, 2.5, 1.0]
    fit = fit_dog(dog(X, Y, *truth), (7, 7), FitLimits())
    assert fit.ok, fit.reason
    v = fit.values
    assert v["sigma_center"] == pytest.approx(1.5, rel=0.01)
    assert v["sigma_surround"] == pytest.approx(3.75, rel=0.01)
    assert v["amplitude_surround"] == pytest.approx(6.0, rel=0.02)


def test_a_fit_that_ends_on_a_bound_is_nan_with_a_reason():
    wide = gaussian(X, Y, 10.0, 7, 7, 12.0, 11.0, 0.0, 0.0)
    fit = fit_gaussian(wide, (7, 7), FitLimits(sigma_max=7.5))
    assert not fit.ok and "ended at its bound 7.5" in fit.reason
    assert all(np.isnan(v) for v in fit.values.values()) and np.isnan(fit.r_squared)
    few = fit_gaussian(
        gaussian(X, Y, 10.0, 7, 7, 2, 1, 0.3, 0), (7, 7), FitLimits(max_evaluations=2)
    )
    assert not few.ok and "did not converge in 2 evaluations" in few.reason


def test_a_noise_sta_is_too_noisy_and_a_clear_one_is_fitted():
    rng = np.random.default_rng(2)
    noise = rng.normal(127.5, 4, (60, 15, 15)).astype(np.float32)
    rf = analyse_sta(noise, PARAMS)
    assert rf.status == "too_noisy" and rf.reason.startswith("STA too noisy")
    assert all(np.isnan(f.values["center_x"]) for f in rf.fits.values() if "center_x" in f.values)
    sta = noise.copy()
    sta[56] -= gaussian(X, Y, 40.0, 4.4, 9.1, 1.8, 1.2, 0.7, 0.0)
    rf = analyse_sta(sta, PARAMS)
    assert rf.status == "fitted" and rf.polarity == "OFF" and rf.peak_frame == 56
    g = rf.fits["gaussian"].values
    assert (g["center_x"], g["center_y"]) == pytest.approx((4.4, 9.1), abs=0.2)
    assert rf.fits["off"].ok


def test_selectivity_of_known_responses():
    deg = np.tile(np.arange(8) * 45.0, 3)
    tuned = 2 + 10 * (deg == 90)
    flat = np.full(24, 5.0)
    result = selectivity(np.array([tuned, flat, np.zeros(24)]), deg, 500, seed=3)
    r = tuned[:8].astype(float)
    assert result.dsi[0] == pytest.approx(10 / r.sum())
    assert result.osi[0] == pytest.approx(10 / r.sum())
    assert result.preferred_deg[0] == pytest.approx(90)
    assert result.p_value[0] < 0.01 and result.p_value[1] == 1.0
    assert result.dsi[1] == pytest.approx(0, abs=1e-12) and np.isnan(result.dsi[2])
    again = selectivity(np.array([tuned, flat, np.zeros(24)]), deg, 500, seed=3)
    np.testing.assert_array_equal(again.p_value, result.p_value)


def _stimuli(tmp_path, config, n_frames):
    (tmp_path / "configs").mkdir(exist_ok=True)
    (tmp_path / "configs" / "moving_bar_x.json").write_text(json.dumps(config))
    return load_moving_bar(tmp_path, "moving_bar_x", n_frames)


def test_the_bar_passes_when_the_generator_drew_it(tmp_path):
    config = moving_bar_config(2)
    n = config["start_frame"] + config["repeat"] * config["trial_length_frame"]
    bar = _stimuli(tmp_path, config, n)
    for point in [(150.0, 150.0), (37.0, 251.0), (290.0, 12.0)]:
        covered = bar_coverage(config, point)
        windows = bar.passage(*point, margin=0) - bar.trials[:, :1]
        for cover, (first, end) in zip(covered, windows, strict=True):
            assert np.flatnonzero(cover).tolist() == list(range(first, end))


@pytest.mark.parametrize(
    "change, n_frames, phrase",
    [
        ({}, 100, "does not match the playlist"),
        ({"directions_deg": [0, 90, 180]}, None, "lists 3 directions for its 16 trials"),
        ({"directions_deg": [0, 45, 90, 135, 180, 225, 270, 300] * 2}, None, "evenly spaced"),
        ({"speed_px_per_frame": 1.0}, None, "does not cross the field"),
        ({"bar_width_px": None, "field_size_px": None}, None, "lacks"),
    ],
)
def test_a_bad_bar_description_is_refused(tmp_path, change, n_frames, phrase):
    config = moving_bar_config(2)
    bar = config["moving_bar"]
    bar.update(change)
    for key in [k for k, v in change.items() if v is None]:
        del bar[key]
    length = config["start_frame"] + config["repeat"] * config["trial_length_frame"]
    with pytest.raises(InputError, match=phrase):
        _stimuli(tmp_path, config, n_frames or length)
