"""Raw metrics on real-looking recordings: unlabelled frames, and metrics that raise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from iblphotometry import metrics as ibl_metrics
from iblphotometry import preprocessing

from nmbatch.ibl.photometry_faults import drop_frames, unlabel_frames
from nmbatch.ibl.signals import simulate_photometry
from nmbatch.photometry.config import QCConfig
from nmbatch.photometry.qc import qc_session
from nmbatch.photometry.raw_metrics import n_band_inversions, raw_metric_values

LOCATIONS = pd.DataFrame(
    {"fiber": ["f0", "f1"], "brain_region": ["VTA", "NAc"]},
    index=pd.Index(["Region0G", "Region1G"], name="ROI"),
)


@pytest.fixture(scope="module")
def recording() -> pd.DataFrame:
    return simulate_photometry(np.random.default_rng(3), 40.0, 2)


def long(signal: pd.DataFrame) -> pd.DataFrame:
    return signal.set_index("times")


def corrected_iblphotometry(signal: pd.DataFrame, run: np.ndarray) -> int:
    """iblphotometry's fill and count with the one gap its find_gaps fails to return."""
    filled = preprocessing.fill_gaps(long(signal), [run])
    return int(np.sum(filled["color"].values[:-1] == filled["color"].values[1:]))


@pytest.mark.parametrize(
    "positions",
    [[0], [500], [500, 501, 502], [0, 1], [2399]],
    ids=["first frame", "one mid frame", "a run of three", "first two", "last frame"],
)
def test_one_unlabelled_run_where_iblphotometry_crashes(recording, positions):
    signal = unlabel_frames(recording, positions)
    with pytest.raises(IndexError):  # iblphotometry 0.3.4's find_gaps
        ibl_metrics.n_band_inversions(long(signal))
    value = n_band_inversions(long(signal))
    assert value == corrected_iblphotometry(signal, np.array(positions))


def test_the_right_values_on_clean_interleaving(recording):
    assert n_band_inversions(long(unlabel_frames(recording, [0]))) == 0  # left unlabelled
    assert n_band_inversions(long(unlabel_frames(recording, [500]))) == 0  # filled by alternation
    dropped = drop_frames(recording, np.random.default_rng(4), n=2)
    assert n_band_inversions(long(unlabel_frames(dropped, [0]))) == 2


@pytest.mark.parametrize(
    "positions",
    [[0, 300], [0, 1, 700], [200, 201, 900], [100, 400, 800, 801], [5, 7, 9]],
)
def test_several_unlabelled_runs_give_iblphotometry_own_count(recording, positions):
    signal = unlabel_frames(recording, positions)
    assert n_band_inversions(long(signal)) == ibl_metrics.n_band_inversions(long(signal))


def test_random_gaps_agree_with_iblphotometry_wherever_it_runs(recording):
    """Runs of unlabelled frames anywhere, some after dropped frames or irregularly timed."""
    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(150):
        signal = drop_frames(recording, rng, n=int(rng.integers(0, 3)))
        starts = rng.choice(len(signal) - 4, int(rng.integers(1, 5)), replace=False)
        positions = sorted({int(s + k) for s in starts for k in range(int(rng.integers(1, 4)))})
        signal = unlabel_frames(signal, positions)
        if rng.random() < 0.3:  # an irregular frame inside a gap: iblphotometry leaves it
            signal.loc[positions[0], "times"] += 0.01
        try:
            expected = ibl_metrics.n_band_inversions(long(signal))
        except (IndexError, UnboundLocalError, ValueError):
            continue
        assert n_band_inversions(long(signal)) == expected, positions
        compared += 1
    assert compared > 50


def test_raw_metrics_that_raise_are_nan_with_their_error(recording):
    cfg = QCConfig.from_params(
        {
            "raw_metrics": ["n_early_samples", "n_band_inversions", "n_unique_samples"],
            "sliding_metrics": ["median_absolute_deviance"],
            "sliding_kwargs": {"w_len": 10, "step_len": 5},
        }
    )
    signal = unlabel_frames(recording, [0])
    values, errors = raw_metric_values(signal, cfg)
    assert values == {"n_early_samples": 0.0, "n_band_inversions": 0.0}
    assert isinstance(errors["n_unique_samples"], TypeError)

    result = qc_session(signal, LOCATIONS, cfg)
    assert result.table["n_unique_samples"].isna().all()
    assert (result.table["n_band_inversions"] == 0).all()
    assert result.table["median_absolute_deviance"].notna().all()
    (failure,) = result.failures
    assert (failure.metric, failure.rows, failure.error_type) == (
        "n_unique_samples",
        (),
        "TypeError",
    )
    assert failure.describe().startswith("n_unique_samples: TypeError: '<' not supported")


def test_a_sliding_metric_that_raises_keeps_the_others(recording):
    cfg = QCConfig.from_params(
        {
            "sliding_metrics": ["n_band_inversions", "n_edges"],  # needs the long table's color
            "sliding_kwargs": {"w_len": 10, "step_len": 5},
        }
    )
    for path in ("fast", "reference"):
        result = qc_session(recording, LOCATIONS, cfg, path)
        assert result.table["n_band_inversions"].isna().all()
        assert result.table["n_edges"].notna().all()
        (failure,) = result.failures
        assert failure.metric == "n_band_inversions" and failure.error_type == "KeyError"
        assert set(failure.rows) == {"GCaMP/VTA", "GCaMP/NAc", "Isosbestic/VTA", "Isosbestic/NAc"}


def test_a_signal_without_frames_or_bands_fails_with_a_reason(recording):
    cfg = QCConfig.from_params(
        {"sliding_metrics": ["n_edges"], "sliding_kwargs": {"w_len": 10, "step_len": 5}}
    )
    with pytest.raises(ValueError, match="has no frames"):
        qc_session(recording.iloc[:0], LOCATIONS, cfg)
    with pytest.raises(ValueError, match="no frame of the photometry signal names a band"):
        qc_session(unlabel_frames(recording, range(len(recording))), LOCATIONS, cfg)
