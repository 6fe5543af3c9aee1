"""Photometry QC: iblphotometry's own numbers, reshaped; and every planted demo case's outcome."""

from __future__ import annotations

import argparse
import pickle

import dask.config
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from ibl_fixtures import SEED_SLIDING
from iblphotometry import fpio
from iblphotometry import metrics as ibl_metrics
from iblphotometry.qc import qc_signals

from nmbatch.engine.errors import ConfigError, DataSourceError
from nmbatch.engine.job import ItemContext
from nmbatch.engine.session import cache_for_job
from nmbatch.engine.settings import setting
from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal
from nmbatch.ibl.one_source import OneSource
from nmbatch.ibl.sessions import select_sessions
from nmbatch.photometry.config import QCConfig, resolve_metrics
from nmbatch.photometry.job import PhotometryQCJob
from nmbatch.photometry.qc import WINDOW_CENTRE, qc_session

pytest_plugins = ["ibl_fixtures"]

LOADS = ("can_load_photometry_signal", "can_load_photometry_locations", "can_load_trials")


@pytest.fixture(scope="module")
def config(photometry_params) -> QCConfig:
    return QCConfig.from_params(photometry_params)


@pytest.fixture(scope="module")
def session(demo_info, demo_one) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An ordinary session's long signal table and ROI locations."""
    eid = demo_info.ordinary_eids[-1]
    return load_photometry_signal(demo_one, eid), load_photometry_locations(demo_one, eid)


def test_shipped_parameters_are_the_seeds(photometry_params, config):
    assert config.sliding_names == SEED_SLIDING
    assert config.raw_names == ["n_early_samples", "n_band_inversions"]
    assert dict(config.sliding_kwargs) == {"w_len": 120, "step_len": 60, "detrend": True}
    assert photometry_params["exclude_session_types"] == [
        "habituation",
        "advanced",
        "neuromodulator",
        "passive",
        "misc",
        "histology",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sliding_metrics": ["n_edges", "n_egdes"]},
            r"unknown photometry metric\(s\) \['n_egdes'",
        ),
        ({"raw_metrics": ["n_edges"], "sliding_metrics": ["n_edges"]}, "more than once"),
        ({"sliding_kwargs": {"w_len": 120}}, "step_len must be a positive"),
        ({"sliding_kwargs": {"w_len": 0, "step_len": 60}}, "w_len must be a positive"),
        ({"metrics_kwargs": {"percentile_asymetry": {"pc_comp": 75}}}, "not configured"),
    ],
)
def test_bad_metric_settings_are_config_errors(photometry_params, change, message):
    with pytest.raises(ConfigError, match=message):
        QCConfig.from_params({**photometry_params, **change})


def test_metric_names_resolve_to_iblphotometry_functions():
    fn = resolve_metrics(["ar_score"])[0]
    assert fn.__module__ == "iblphotometry.metrics" and fn.__name__ == "ar_score"
    with pytest.raises(ConfigError, match="noise_simulation"):  # takes a metric, not a signal
        resolve_metrics(["noise_simulation"])


def test_reference_path_equals_a_direct_qc_signals_call(session, config, photometry_params):
    signal, locations = session
    result = qc_session(signal, locations, config, "reference")

    bands = fpio.from_photometry_df(signal, rename=locations["brain_region"].to_dict())
    tidy = qc_signals(
        bands,
        [getattr(ibl_metrics, name) for name in SEED_SLIDING],
        metrics_kwargs=photometry_params["metrics_kwargs"],
        sliding_kwargs=photometry_params["sliding_kwargs"],
    )
    windows = tidy[tidy["window"].notna()]
    table = result.table.set_index(["band", "brain_region"])
    assert len(table) == 2 * 3
    assert (table["n_windows"] == 3).all()
    for (band, region, metric), values in windows.groupby(["band", "brain_region", "metric"]):
        row = table.loc[(band, region)]
        assert row[metric] == values["value"].mean()
        np.testing.assert_array_equal(result.arrays[metric][row["row"]], values["value"])
        np.testing.assert_array_equal(result.arrays[WINDOW_CENTRE][row["row"]], values["window"])
    roi = locations.reset_index().set_index("brain_region")
    assert (table["roi"] == roi.loc[table.index.get_level_values(1), "ROI"].values).all()


def test_table_matches_the_declared_schema(session, config):
    table = qc_session(*session, config).table
    arrow = pa.Table.from_pandas(table, schema=config.table_schema(), preserve_index=False)
    assert arrow.schema.names == list(table.columns)
    assert set(qc_session(*session, config).arrays) == {WINDOW_CENTRE, *SEED_SLIDING}


def test_raw_metrics_see_the_long_tables_glitches(demo_info, demo_one, session, config):
    eid = demo_info.cases["band_glitch"]
    glitch = qc_session(
        load_photometry_signal(demo_one, eid), load_photometry_locations(demo_one, eid), config
    ).table
    assert (glitch["n_band_inversions"] == 1).all() and (glitch["n_early_samples"] == 1).all()
    clean = qc_session(*session, config).table
    assert (clean["n_band_inversions"] == 0).all() and (clean["n_early_samples"] == 0).all()


def test_a_recording_shorter_than_a_window_gives_no_window(session, photometry_params):
    signal, locations = session
    short = signal[signal["times"] < 60.0]
    result = qc_session(short, locations, QCConfig.from_params(photometry_params))
    assert (result.table["n_windows"] == 0).all()
    assert result.table[SEED_SLIDING].isna().all().all()
    assert result.arrays["ar_score"].shape == (6, 0)


def test_two_rois_in_one_region_are_refused(session, config):
    signal, locations = session
    twice = locations.assign(brain_region=["VTA", "VTA", "NAc"])
    with pytest.raises(ValueError, match=r"brain region\(s\) \['VTA'\] for more than one ROI"):
        qc_session(signal, twice, config)


# -- the job, item by item, as the engine runs it -------------------------------------------


@pytest.fixture(scope="module")
def job(demo_info) -> PhotometryQCJob:
    return PhotometryQCJob(OneSource(demo_info.root, demo=True))


@pytest.fixture(scope="module")
def outcomes(job, photometry_params) -> dict[str, dict]:
    """Run every listed item with run_item, recording what the engine would record."""
    out = {}
    for item in job.list_items(photometry_params).items:
        ctx = ItemContext(item, photometry_params)
        try:
            result = job.run_item(item, ctx)
            out[item.id] = {"status": "done", "result": result, "flags": dict(ctx.flags)}
        except Exception as exc:
            out[item.id] = {
                "status": "failed",
                "stage": ctx.failed_stage,
                "error": exc,
                "flags": dict(ctx.flags),
            }
    return out


def test_cleaning_leaves_out_the_excluded_sessions(demo_info, outcomes):
    cases = demo_info.cases
    left_out = {cases["habituation"], cases["conflict"], *demo_info.excluded_eids}
    assert set(outcomes) == set(demo_info.eids) - left_out


def test_missing_locations_fail_at_load_locations(demo_info, outcomes):
    outcome = outcomes[demo_info.cases["missing_locations"]]
    assert outcome["status"] == "failed" and outcome["stage"] == "load_locations"
    assert type(outcome["error"]).__name__ == "ALFObjectNotFound"
    flags = outcome["flags"]
    assert flags["can_load_photometry_signal"] is True
    assert flags["can_load_photometry_locations"] is False
    assert flags["can_load_trials"] is None  # not tried
    assert flags["load_error"] == "locations: ALFObjectNotFound"


def test_corrupt_signal_fails_at_load_signal(demo_info, outcomes):
    outcome = outcomes[demo_info.cases["corrupt_signal"]]
    assert outcome["status"] == "failed" and outcome["stage"] == "load_signal"
    assert isinstance(outcome["error"], pa.ArrowInvalid)
    assert outcome["flags"]["can_load_photometry_signal"] is False
    assert outcome["flags"]["can_load_photometry_locations"] is None
    assert outcome["flags"]["load_error"] == "signal: ArrowInvalid"


def test_trials_are_optional(demo_info, outcomes):
    in_alf = outcomes[demo_info.cases["trials_in_alf"]]
    assert in_alf["status"] == "done" and in_alf["flags"]["can_load_trials"] is True
    none = outcomes[demo_info.cases["no_trials"]]
    assert none["status"] == "done"
    assert none["flags"]["can_load_trials"] is False
    assert none["flags"]["trials_error"] == "ALFObjectNotFound"
    assert none["flags"]["load_error"] is None
    assert len(none["result"].tables["qc"]) == 6


def test_ordinary_sessions_load_everything_and_return_qc(demo_info, outcomes, config):
    faulty = {demo_info.cases["missing_locations"], demo_info.cases["corrupt_signal"]}
    ordinary = [o for eid, o in outcomes.items() if eid not in faulty]
    assert ordinary and all(o["status"] == "done" for o in ordinary)
    for outcome in ordinary:
        result = outcome["result"]
        assert result.flags == outcome["flags"]
        assert list(result.tables["qc"].columns) == config.table_schema().names
        assert result.arrays["n_outliers"].shape == (6, 3)
        if outcome["flags"]["trials_error"] is None:
            assert all(outcome["flags"][flag] for flag in LOADS)


def test_selection_by_nm_and_subject(job, photometry_params, demo_info):
    sessions = OneSource(demo_info.root, demo=True).sessions_table()
    da = select_sessions(sessions, nm=["DA"])
    assert set(da["NM"]) == {"DA"} and len(da) > 0
    one = select_sessions(sessions, nm=["DA", "5HT"], subjects=["NMD-01"])
    assert set(one["subject"]) == {"NMD-01"}
    with pytest.raises(DataSourceError, match=r"--nm \['Ach'\] matches no session"):
        select_sessions(sessions, nm=["Ach"])
    with pytest.raises(DataSourceError, match="--nm needs a sessions table with NM values"):
        select_sessions(sessions.assign(NM=None), nm=["DA"])
    filtered = PhotometryQCJob(job.source, nm=["ACh"]).list_items(photometry_params)
    assert {i.label for i in filtered.items} == {"NMD-05"}


def test_job_travels_without_the_sessions_table(job, photometry_params):
    job.list_items(photometry_params)  # the listing keeps its tables; the job keeps nothing
    copy = pickle.loads(pickle.dumps(job))
    assert copy.source == job.source
    assert len(pickle.dumps(job)) < 1000


def test_sessions_export_and_summary_from_item_states(
    job, outcomes, photometry_params, demo_info, tmp_path
):
    listing = job.list_items(photometry_params)
    items = {i.id: i for i in listing.items}
    pending = demo_info.cases["band_glitch"]  # left out: as if not run yet
    with cache_for_job(job, photometry_params, tmp_path) as cache:
        for eid, outcome in outcomes.items():
            if eid == pending:
                continue
            if outcome["status"] == "done":
                result = outcome["result"]
                cache.add(eid, label=items[eid].label, tables=result.tables, flags=result.flags)
            else:
                cache.add_error(
                    eid,
                    outcome["error"],
                    label=items[eid].label,
                    stage=outcome["stage"],
                    flags=outcome["flags"],
                )
        cache.save()
        job.on_saved(cache, listing)
        lines = job.summary_lines(cache, listing)

    sessions = pd.read_parquet(tmp_path / job.name / "sessions.pqt").set_index("eid")
    assert set(sessions.index) == set(items)
    cases = demo_info.cases
    assert sessions.loc[cases["missing_locations"], "load_error"] == "locations: ALFObjectNotFound"
    assert not sessions.loc[cases["no_trials"], "can_load_trials"]
    assert pd.isna(sessions.loc[pending, "can_load_photometry_signal"])
    assert sessions["can_load_photometry_signal"].dtype == "boolean"

    text = "\n".join(lines)
    assert "excluded (excluded_subject): 2" in text
    assert "excluded (conflict_duplicate): 1" in text
    signal_line = next(line for line in lines if "photometry_signal" in line)
    # has, loads / has, fails (the corrupt file) / has not, loads / has not, fails
    done = len(items) - 1
    assert signal_line.split()[-4:] == [str(done - 1), "1", "0", "0"]


def test_qc_path_is_a_run_setting_not_a_parameter(demo_info, photometry_params):
    args = argparse.Namespace(
        demo=None, one_cache=demo_info.root, sessions=None, nm=[], subject=[], qc_path=None
    )
    assert setting("photometry.qc-path") == "fast"
    assert PhotometryQCJob.from_args(args).qc_path == "fast"
    with dask.config.set({"nmbatch.photometry.qc-path": "reference"}):
        assert PhotometryQCJob.from_args(args).qc_path == "reference"
        args.qc_path = "fast"  # the flag wins
        assert PhotometryQCJob.from_args(args).qc_path == "fast"
    with (
        dask.config.set({"nmbatch.photometry.qc-path": "quick"}),
        pytest.raises(ConfigError, match="--qc-path quick: choose one of fast, reference"),
    ):
        PhotometryQCJob.from_args(argparse.Namespace(**{**vars(args), "qc_path": None}))
    assert "qc_path" not in photometry_params and "qc-path" not in photometry_params


def test_both_paths_store_the_same_qc(job, demo_info, photometry_params):
    item = next(
        i for i in job.list_items(photometry_params).items if i.id == demo_info.cases["band_glitch"]
    )
    results = {}
    for path in ("fast", "reference"):
        runner = PhotometryQCJob(job.source, qc_path=path)
        results[path] = runner.run_item(item, ItemContext(item, photometry_params))
    fast, ref = results["fast"], results["reference"]
    pd.testing.assert_frame_equal(fast.tables["qc"], ref.tables["qc"], rtol=1e-9)
    assert fast.flags == ref.flags


def test_a_failing_metric_is_flagged_summarised_and_exported(
    job, demo_info, photometry_params, tmp_path
):
    params = {
        **photometry_params,
        "raw_metrics": ["n_early_samples"],
        "sliding_metrics": ["n_edges", "n_band_inversions"],
        "metrics_kwargs": {},
    }
    listing = job.list_items(params)
    item = next(i for i in listing.items if i.id == demo_info.cases["band_glitch"])
    result = job.run_item(item, ItemContext(item, params))
    qc = result.tables["qc"]
    assert qc["n_band_inversions"].isna().all() and qc["n_edges"].notna().all()
    (failure,) = result.flags["metric_errors"]
    assert failure["metric"] == "n_band_inversions" and failure["error_type"] == "KeyError"
    assert len(failure["rows"]) == 6

    with cache_for_job(job, params, tmp_path) as cache:
        cache.add(item.id, label=item.label, tables=result.tables, flags=result.flags)
        cache.save()
        job.on_saved(cache, listing)
        lines = job.summary_lines(cache, listing)
    text = "\n".join(lines)
    assert "metrics stored as NaN because they raised" in text
    line = next(line for line in lines if line.strip().startswith("n_band_inversions"))
    assert line.split()[:3] == ["n_band_inversions", "KeyError", "1"]
    sessions = pd.read_parquet(tmp_path / job.name / "sessions.pqt").set_index("eid")
    assert sessions.loc[item.id, "metric_errors"].startswith("n_band_inversions (GCaMP/")
