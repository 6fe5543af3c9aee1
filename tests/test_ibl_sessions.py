"""Sessions tables: cleaning, types from protocols, load checks, and where they come from."""

from __future__ import annotations

import argparse
import datetime
import pickle
from pathlib import Path

import pandas as pd
import pytest
from one.api import One

from nmbatch.engine.errors import DataSourceError
from nmbatch.ibl.demo import read_demo_info
from nmbatch.ibl.one_source import (
    DEMO_DIRNAME,
    OneSource,
    add_source_arguments,
    read_sessions_file,
    sessions_from_one,
)
from nmbatch.ibl.sessions import clean_sessions, compare_load_flags, session_type_from_protocol

pytest_plugins = ["ibl_fixtures"]

DAY1, DAY2 = datetime.date(2024, 5, 1), datetime.date(2024, 5, 2)


def table(rows: list[tuple]) -> pd.DataFrame:
    """A sessions table from (eid, subject, date, session_type, session_status) tuples."""
    columns = ["eid", "subject", "date", "session_type", "session_status"]
    return pd.DataFrame(rows, columns=columns)


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("_iblrig_tasks_habituationChoiceWorld6.6.2", "habituation"),
        ("_iblrig_tasks_trainingChoiceWorld8.0.0", "training"),
        ("_iblrig_tasks_biasedChoiceWorld6.6.4", "biased"),
        ("_iblrig_tasks_ephysChoiceWorld6.6.2", "ephys"),
        ("_iblrig_tasks_advancedChoiceWorld8.1.0", "advanced"),
        ("_iblrig_tasks_neuromodulatorChoiceWorld8.2", "neuromodulator"),
        ("_iblrig_tasks_passiveChoiceWorld8.0.0", "passive"),
        ("_iblrig_tasks_biasedChoiceWorld8.0.0/_iblrig_tasks_passiveChoiceWorld8.0.0", "biased"),
        ("spontaneous", "misc"),
        (None, "misc"),
    ],
)
def test_session_type_from_protocol(protocol, expected):
    assert session_type_from_protocol(protocol) == expected


def test_clean_sessions_drops_and_says_why():
    df = table(
        [
            ("a", "s1", DAY1, "biased", "good"),
            ("b", "s1", DAY1, "biased", "conflict"),  # duplicate day with a good row
            ("c", "bad", DAY1, "biased", "good"),  # excluded subject
            ("d", "s2", DAY1, "habituation", "good"),  # excluded type
            ("e", "s2", DAY2, "training", "conflict"),  # conflict alone on its day: kept
            ("f", "s3", DAY2, "training", "good"),
            ("g", "s3", DAY2, "passive", "conflict"),  # excluded type before duplicates
        ]
    )
    kept, excluded = clean_sessions(df, ["bad"], ["habituation", "passive"])
    assert list(kept["eid"]) == ["a", "e", "f"]
    assert list(kept.index) == [0, 1, 2]
    reasons = dict(zip(excluded["eid"], excluded["excluded_reason"], strict=True))
    assert reasons == {
        "b": "conflict_duplicate",
        "c": "excluded_subject",
        "d": "excluded_session_type",
        "g": "excluded_session_type",
    }
    assert len(kept) + len(excluded) == len(df)


def test_rules_apply_in_order_and_dates_may_be_timestamps():
    df = table(
        [
            ("a", "s1", pd.Timestamp("2024-05-01 09:00"), "habituation", "good"),
            ("b", "s1", pd.Timestamp("2024-05-01 14:00"), "training", "conflict"),
            ("c", "s1", pd.Timestamp("2024-05-02 09:00"), "training", "good"),
            ("d", "s1", pd.Timestamp("2024-05-02 14:00"), "training", "conflict"),
        ]
    )
    kept, excluded = clean_sessions(df, [], ["habituation"])
    # day 1's good row is a habituation session, so nothing says the conflict row is wrong
    assert list(kept["eid"]) == ["b", "c"]
    assert dict(zip(excluded["eid"], excluded["excluded_reason"], strict=True)) == {
        "a": "excluded_session_type",
        "d": "conflict_duplicate",
    }


def test_without_session_status_duplicates_are_kept():
    df = table([("a", "s1", DAY1, "biased", None), ("b", "s1", DAY1, "biased", None)])
    kept, excluded = clean_sessions(df.drop(columns="session_status"), [], [])
    assert list(kept["eid"]) == ["a", "b"] and excluded.empty
    kept, excluded = clean_sessions(df.astype({"session_status": "string"}), [], [])
    assert list(kept["eid"]) == ["a", "b"] and excluded.empty


def test_compare_load_flags_counts_only_tried_loads():
    df = pd.DataFrame(
        {
            "has_extracted_photometry_signal": [True, True, True, False],
            "can_load_photometry_signal": pd.array([True, False, None, True], dtype="boolean"),
            "has_extracted_task": [True, False, True, True],
            "can_load_trials": pd.array([True, False, None, None], dtype="boolean"),
        }
    )
    checks = compare_load_flags(df)
    assert list(checks.index) == ["can_load_photometry_signal", "can_load_trials"]
    assert list(checks.loc["can_load_photometry_signal"]) == [1, 1, 1, 0]
    assert list(checks.loc["can_load_trials"]) == [1, 0, 0, 1]
    assert compare_load_flags(df[["has_extracted_task"]]).empty


def parse(*argv: str, output: str = "/out") -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_source_arguments(parser.add_argument_group("data"))
    args = parser.parse_args(argv)
    args.output = Path(output)
    return args


def test_source_from_command_line(tmp_path):
    assert OneSource.from_args(parse()) == OneSource()
    assert OneSource.from_args(parse("--one-cache", str(tmp_path))) == OneSource(tmp_path)
    demo = OneSource.from_args(parse("--demo", output=str(tmp_path)))
    assert demo == OneSource(tmp_path / DEMO_DIRNAME, demo=True)
    elsewhere = OneSource.from_args(parse("--demo", str(tmp_path / "d")))
    assert elsewhere.cache_dir == tmp_path / "d"
    with pytest.raises(SystemExit):
        parse("--demo", "--one-cache", str(tmp_path))
    assert parse("--sessions", "s.pqt").sessions == Path("s.pqt")


def test_without_any_source_the_error_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ONE parameters here
    with pytest.raises(DataSourceError, match="--one-cache DIR.*--demo"):
        OneSource().open()
    assert not (tmp_path / ".one").exists()  # and nothing was written into the home folder


def test_a_folder_without_cache_tables_is_not_a_one_cache(tmp_path):
    with pytest.raises(DataSourceError, match="sessions.pqt and datasets.pqt missing"):
        OneSource(tmp_path).open()


def test_source_pickles_small_and_opens_once_per_process(demo_info):
    source = OneSource(demo_info.root)
    assert len(pickle.dumps(source)) < 500
    one = source.one()
    assert source.one() is one
    assert {str(e) for e in one.search()} == set(demo_info.eids)


def test_sessions_built_from_one_tables(demo_info):
    # a fresh ONE: one that has tried to load a missing file marks it as not existing
    sessions = sessions_from_one(One(cache_dir=demo_info.root, mode="local")).set_index("eid")
    assert set(sessions.index) == set(demo_info.eids)
    metadata = pd.read_parquet(demo_info.sessions_file).set_index("eid").loc[sessions.index]
    assert (sessions["session_type"] == metadata["session_type"]).all()
    assert (sessions["has_extracted_task"] == metadata["has_extracted_task"]).all()
    assert sessions["has_extracted_photometry_locations"].all()  # the cache lists them all
    assert not sessions["has_raw_task"].any()  # the demo writes no raw data
    assert sessions["NM"].isna().all() and sessions["session_status"].isna().all()


def test_sessions_table_sources(demo_info, tmp_path):
    demo = OneSource(demo_info.root, demo=True).sessions_table()
    assert list(demo["eid"]) == list(demo_info.eids)
    built = OneSource(demo_info.root).sessions_table()
    assert "NM" in built and built["NM"].isna().all()
    subset = tmp_path / "subset.pqt"
    demo.iloc[:3].to_parquet(subset)
    assert len(OneSource(demo_info.root).sessions_table(subset)) == 3
    # a demo source with its own table still makes the demo, which the workers will read
    fresh = OneSource(tmp_path / "new_demo", demo=True)
    assert len(fresh.sessions_table(subset)) == 3
    assert read_demo_info(fresh.cache_dir) is not None


def test_sessions_file_errors(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        read_sessions_file(tmp_path / "missing.pqt")
    (tmp_path / "bad.pqt").write_bytes(b"not parquet")
    with pytest.raises(DataSourceError, match="cannot read"):
        read_sessions_file(tmp_path / "bad.pqt")
    pd.DataFrame({"eid": ["a"], "subject": ["s"]}).to_parquet(tmp_path / "few.pqt")
    with pytest.raises(DataSourceError, match=r"lacks column\(s\) \['date', 'session_type'\]"):
        read_sessions_file(tmp_path / "few.pqt")
