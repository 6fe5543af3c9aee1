"""The fast QC path gives iblphotometry's qc_signals numbers, metric by metric.

Every sliding metric of ``iblphotometry.metrics`` is compared on the demo sessions, on a
generated 1-hour session with glitches, dropped and early frames, on signals with NaN runs
(with and without detrend), and on edge cases: shorter than one window, exactly one window,
constant signals. Values must agree within a relative 1e-9 and be NaN exactly where
qc_signals gives NaN; a metric that fails must fail on both paths.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
from ibl_fixtures import SEED_SLIDING
from iblphotometry import metrics as ibl_metrics
from iblphotometry.qc import qc_signals
from scipy.stats import linregress

from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal
from nmbatch.ibl.photometry_faults import add_nan_runs, faulty_recording
from nmbatch.ibl.signals import simulate_photometry
from nmbatch.photometry import fast_qc
from nmbatch.photometry.config import QCConfig, available_metrics
from nmbatch.photometry.fast_metrics import KERNELS
from nmbatch.photometry.fast_qc import fast_sliding_qc
from nmbatch.photometry.qc import qc_session, split_bands
from nmbatch.photometry.signal_qc import SignalQC, reference_sliding_qc
from nmbatch.photometry.windows import build_windows

pytest_plugins = ["ibl_fixtures"]
# iblphotometry's metrics warn on constant and NaN windows; both paths meet the same ones
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

RTOL = 1e-9
EXTRA = ["signal_skew", "n_early_samples", "low_freq_power_ratio", "spectral_entropy"]
NO_KERNEL = ["n_band_inversions", "bleaching_tau"]  # left to qc_signals
# n_outliers mid-way: the metrics after it see its edits
EVERY = SEED_SLIDING[:5] + EXTRA + SEED_SLIDING[5:] + NO_KERNEL
FAST_METRICS = SEED_SLIDING[:5] + EXTRA + SEED_SLIDING[5:]
KWARGS = {"percentile_asymmetry": {"pc_comp": 75}}


def config(names, detrend=True, w_len=120, step_len=60) -> QCConfig:
    return QCConfig.from_params(
        {
            "sliding_metrics": names,
            "sliding_kwargs": {"w_len": w_len, "step_len": step_len, "detrend": detrend},
            "metrics_kwargs": {k: v for k, v in KWARGS.items() if k in names},
        }
    )


def both_paths(bands: dict[str, pd.DataFrame], cfg: QCConfig) -> dict[str, tuple]:
    """(fast, reference) SignalQC of every signal; each path gets its own copy of the data."""
    ref_bands, fast_bands = copy.deepcopy(bands), copy.deepcopy(bands)
    return {
        f"{band}/{region}": (
            fast_sliding_qc(fast_bands[band][region], cfg, report=False),
            reference_sliding_qc(ref_bands, band, region, cfg),
        )
        for band, df in bands.items()
        for region in df.columns
    }


def assert_same(fast: SignalQC, ref: SignalQC, metric: str) -> None:
    np.testing.assert_array_equal(fast.centres, ref.centres)
    if metric in ref.errors:
        assert metric in fast.errors, f"qc_signals fails ({ref.errors[metric]!r}), fast does not"
        assert type(fast.errors[metric]) is type(ref.errors[metric])
        return
    assert metric not in fast.errors, f"fast fails: {fast.errors.get(metric)!r}"
    got, want = fast.values[metric], ref.values[metric]
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN in other windows")
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL, atol=0)


def assert_metric(results: dict[str, tuple], metric: str) -> None:
    for name, (fast, ref) in results.items():
        try:
            assert_same(fast, ref, metric)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def bands_of(signal: pd.DataFrame, names=("VTA", "SNc", "NAc")) -> dict[str, pd.DataFrame]:
    rois = [c for c in signal.columns if c.startswith("Region")]
    locations = pd.DataFrame(
        {"fiber": [f"f{i}" for i in range(len(rois))], "brain_region": list(names[: len(rois)])},
        index=pd.Index(rois, name="ROI"),
    )
    return split_bands(signal, locations)


# -- the cases, each computed once ------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(demo_info, demo_one):
    """Two demo sessions (one with a dropped and an early frame), every metric."""
    out = {}
    for eid in (demo_info.ordinary_eids[0], demo_info.cases["band_glitch"]):
        signal = load_photometry_signal(demo_one, eid)
        bands = split_bands(signal, load_photometry_locations(demo_one, eid))
        out.update({f"{eid[:8]}:{k}": v for k, v in both_paths(bands, config(EVERY)).items()})
    return out


@pytest.fixture(scope="module")
def hour():
    """One hour at 30 Hz, 2 ROIs, glitches, dropped and early frames; every fast metric."""
    signal = faulty_recording(np.random.default_rng(14), 3600.0, n_rois=2)
    return both_paths(bands_of(signal), config(FAST_METRICS))


@pytest.fixture(scope="module")
def nan_runs():
    """20 minutes with NaN runs in every band, windows with and without detrend."""
    rng = np.random.default_rng(15)
    bands = bands_of(faulty_recording(rng, 1200.0, n_rois=1))
    for df in bands.values():
        df[df.columns[0]] = add_nan_runs(df[df.columns[0]].to_numpy(), rng, n_runs=4)
    results = {}
    for detrend in (True, False):
        cfg = config(EVERY[:-1], detrend=detrend)  # bleaching_tau cannot fit NaN
        results.update({f"detrend={detrend}:{k}": v for k, v in both_paths(bands, cfg).items()})
    return results


def _signal(values: np.ndarray, fs: float = 30.0) -> dict[str, pd.DataFrame]:
    return {"GCaMP": pd.DataFrame({"VTA": values}, index=np.arange(len(values)) / fs)}


@pytest.fixture(scope="module")
def edges():
    """Shorter than one window, exactly one window, and constant signals."""
    rng = np.random.default_rng(16)
    noise = simulate_photometry(rng, 200.0, 1)["Region0G"].to_numpy()[::2]
    cases = {
        "short": (_signal(noise[: 100 * 30]), True),
        "one_window": (_signal(noise[: 130 * 30]), True),
        "constant_1": (_signal(np.ones(200 * 30)), True),
        "constant_0.1": (_signal(np.full(200 * 30, 0.1)), True),
        "constant_raw": (_signal(np.full(200 * 30, 0.1)), False),
    }
    results = {}
    for name, (bands, detrend) in cases.items():
        cfg = config(EVERY, detrend=detrend)
        results.update({f"{name}:{k}": v for k, v in both_paths(bands, cfg).items()})
    return results


@pytest.mark.parametrize("metric", EVERY)
def test_demo_sessions(demo, metric):
    assert_metric(demo, metric)


@pytest.mark.parametrize("metric", FAST_METRICS)
def test_one_hour_session_with_glitches_dropped_and_early_frames(hour, metric):
    assert_metric(hour, metric)


@pytest.mark.parametrize("metric", EVERY[:-1])
def test_nan_runs(nan_runs, metric):
    assert_metric(nan_runs, metric)


@pytest.mark.parametrize("metric", EVERY)
def test_edge_cases(edges, metric):
    assert_metric(edges, metric)


def test_edge_cases_have_the_expected_windows(edges):
    assert len(edges["short:GCaMP/VTA"][1].centres) == 0
    assert len(edges["one_window:GCaMP/VTA"][1].centres) == 1
    fast, ref = edges["constant_1:GCaMP/VTA"]
    assert np.isnan(ref.values["ar_score"]).all() and np.isnan(fast.values["ar_score"]).all()


def test_the_cases_cover_every_metric_and_kernel():
    assert set(EVERY) == set(available_metrics())
    assert set(FAST_METRICS) == set(KERNELS)


def test_nan_windows_and_failures_are_really_exercised(nan_runs, demo):
    fast, _ = nan_runs["detrend=False:GCaMP/VTA"]
    assert np.isnan(fast.values["median_absolute_deviance"]).any()  # a window with a dropout
    assert not np.isnan(fast.values["median_absolute_deviance"]).all()
    fast, ref = next(iter(demo.values()))
    assert isinstance(ref.errors["n_band_inversions"], KeyError)  # needs the long table


# -- the windows themselves -------------------------------------------------------------------


def test_windows_and_detrend_are_qc_signals_own_to_the_bit():
    signal = _signal(faulty_recording(np.random.default_rng(17), 600.0, 1)["Region0G"].values)
    series = signal["GCaMP"]["VTA"]
    windows = build_windows(series.index.values, series.values, config(SEED_SLIDING).sliding_kwargs)
    starts = np.arange(series.index[0], series.index[-1] - 120, 60)
    assert len(windows) == len(starts)
    for i, start in enumerate(starts):  # qc_signals' own loop
        window = series.loc[(series.index >= start) & (series.index < start + 120)].copy()
        res = linregress(window.index, window.values)
        window -= window.index * res.slope + res.intercept
        np.testing.assert_array_equal(windows.values(i), window.values)
        np.testing.assert_array_equal(windows.times[windows.positions[i]], window.index.values)


def test_n_outliers_edits_the_signal_for_the_metrics_after_it():
    """qc_signals runs n_outliers on the whole signal in place: an outlier in the last partial
    block is replaced by the block's median before the later metrics' windows are cut."""
    rng = np.random.default_rng(18)
    values = rng.normal(size=130 * 30)  # 3900 samples: the last block (900) reaches into [0, 120)
    values[110 * 30] = 40.0
    alone = qc_signals(
        _signal(values),
        [ibl_metrics.median_absolute_deviance],
        sliding_kwargs=config([]).sliding_kwargs,
    )
    results = both_paths(_signal(values), config(["n_outliers", "median_absolute_deviance"]))
    fast, ref = results["GCaMP/VTA"]
    after = ref.values["median_absolute_deviance"]
    assert after[0] != alone["value"].iloc[-1], "qc_signals no longer edits the signal"
    assert_same(fast, ref, "median_absolute_deviance")


def test_a_metric_without_kernel_falls_back_and_says_so_once(caplog, monkeypatch):
    monkeypatch.setattr(fast_qc, "_reported_fallbacks", set())
    series = _signal(simulate_photometry(np.random.default_rng(19), 200, 1)["Region0G"].values)
    cfg = config(["bleaching_tau", "n_edges"])
    with caplog.at_level(logging.WARNING, logger="nmbatch.photometry.fast_qc"):
        fast_sliding_qc(series["GCaMP"]["VTA"], cfg)
        result = fast_sliding_qc(series["GCaMP"]["VTA"], cfg)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "bleaching_tau" in warnings[0] and "n_edges" not in warnings[0]
    reference = reference_sliding_qc(copy.deepcopy(series), "GCaMP", "VTA", cfg)
    assert_same(result, reference, "bleaching_tau")


def test_kwargs_a_kernel_does_not_take_fall_back():
    assert fast_qc.uncovered_metrics(config(SEED_SLIDING)) == []
    cfg = QCConfig.from_params(
        {
            "sliding_metrics": ["percentile_distance"],
            "sliding_kwargs": {"w_len": 120, "step_len": 60},
            "metrics_kwargs": {"percentile_distance": {"axis": -1}},
        }
    )
    assert fast_qc.uncovered_metrics(cfg) == ["percentile_distance"]


def test_whole_sessions_are_equal_on_both_paths(demo_info, demo_one, photometry_params):
    eid = demo_info.cases["band_glitch"]
    signal = load_photometry_signal(demo_one, eid)
    locations = load_photometry_locations(demo_one, eid)
    cfg = QCConfig.from_params(photometry_params)
    fast = qc_session(signal, locations, cfg, "fast")
    ref = qc_session(signal, locations, cfg, "reference")
    pd.testing.assert_frame_equal(fast.table, ref.table, rtol=RTOL)
    assert fast.arrays.keys() == ref.arrays.keys()
    for name in ref.arrays:
        np.testing.assert_allclose(fast.arrays[name], ref.arrays[name], rtol=RTOL, atol=0)
    assert fast.failures == ref.failures == []
