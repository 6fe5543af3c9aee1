"""The demo generator writes a real ONE cache whose planted faults load (or fail) as designed."""

from __future__ import annotations

import uuid

import pandas as pd
import pyarrow as pa
import pytest
from one.alf.exceptions import ALFObjectNotFound
from one.api import One

from nmbatch.ibl.demo import (
    CASES,
    EXCLUDED_SUBJECT,
    MIN_PLANTED_SESSIONS,
    make_demo_one_cache,
)
from nmbatch.ibl.loading import (
    load_photometry_locations,
    load_photometry_signal,
    load_trials,
)
from nmbatch.ibl.signals import BANDS

pytest_plugins = ["ibl_fixtures"]

SMALL = {"n_sessions": MIN_PLANTED_SESSIONS, "duration_s": 20.0}


def test_one_local_mode_finds_every_session(demo_info, demo_one):
    eids = demo_one.search()
    assert {str(e) for e in eids} == set(demo_info.eids)
    assert len(demo_info.eids) == len(set(demo_info.eids))
    assert all(uuid.UUID(e).version == 3 for e in demo_info.eids)
    excluded = demo_one.search(subject=EXCLUDED_SUBJECT.name)
    assert {str(e) for e in excluded} == set(demo_info.excluded_eids)
    assert len(demo_info.excluded_eids) == 2


def test_every_case_is_planted_once(demo_info):
    assert set(demo_info.cases) == set(CASES)
    assert len(set(demo_info.cases.values())) == len(CASES)
    assert demo_info.excluded_subject == EXCLUDED_SUBJECT.name
    n_special = len(CASES) + len(demo_info.excluded_eids)
    assert len(demo_info.ordinary_eids) == len(demo_info.eids) - n_special > 0


def test_sessions_table_states_the_metadata_claims(demo_info):
    sessions = pd.read_parquet(demo_info.sessions_file).set_index("eid")
    assert list(sessions.index) == list(demo_info.eids)
    assert set(sessions["NM"]) == {"DA", "5HT", "NE", "ACh"}
    cases = demo_info.cases
    assert sessions.loc[cases["habituation"], "session_type"] == "habituation"
    assert not sessions.loc[cases["no_trials"], "has_extracted_task"]
    assert sessions["has_extracted_task"].sum() == len(sessions) - 1
    # the metadata promises locations and a signal that will not load
    assert sessions.loc[cases["missing_locations"], "has_extracted_photometry_locations"]
    assert sessions.loc[cases["corrupt_signal"], "has_extracted_photometry_signal"]
    conflict = sessions.loc[cases["conflict"]]
    assert conflict["session_status"] == "conflict"
    twin = sessions[
        (sessions["subject"] == conflict["subject"]) & (sessions["date"] == conflict["date"])
    ]
    assert sorted(twin["session_status"]) == ["conflict", "good"]


def test_signal_has_the_alf_layout(demo_info, demo_one):
    signal = load_photometry_signal(demo_one, demo_info.ordinary_eids[-1])
    assert list(signal.columns) == [
        "times",
        "Region0G",
        "Region1G",
        "Region2G",
        "wavelength",
        "name",
        "color",
        "valid",
    ]
    assert signal["times"].is_monotonic_increasing
    assert list(signal["name"].iloc[:4]) == [b[0] for b in BANDS] * 2
    assert set(signal["wavelength"]) == {415.0, 470.0}
    locations = load_photometry_locations(demo_one, demo_info.ordinary_eids[-1])
    assert locations.index.name == "ROI"
    assert list(locations.index) == ["Region0G", "Region1G", "Region2G"]
    assert locations["brain_region"].is_unique


def test_planted_faults_raise_ones_own_errors(demo_info, demo_one):
    cases = demo_info.cases
    with pytest.raises(ALFObjectNotFound, match="photometryROI.locations.pqt"):
        load_photometry_locations(demo_one, cases["missing_locations"])
    with pytest.raises(pa.ArrowInvalid):
        load_photometry_signal(demo_one, cases["corrupt_signal"])


def test_trials_fall_back_from_task_00_to_alf(demo_info, demo_one):
    cases = demo_info.cases
    trials, collection = load_trials(demo_one, demo_info.ordinary_eids[-1])
    assert collection == "alf/task_00"
    assert len(trials) >= 400
    trials, collection = load_trials(demo_one, cases["trials_in_alf"])
    assert collection == "alf"
    assert {"contrastLeft", "probabilityLeft", "feedbackType"} <= set(trials.columns)
    with pytest.raises(ALFObjectNotFound, match="not found in alf/task_00 nor alf") as caught:
        load_trials(demo_one, cases["no_trials"])
    assert isinstance(caught.value.__cause__, ALFObjectNotFound)


def test_same_arguments_give_the_same_data(tmp_path):
    a = make_demo_one_cache(tmp_path / "a", **SMALL)
    b = make_demo_one_cache(tmp_path / "b", **SMALL)
    c = make_demo_one_cache(tmp_path / "c", **SMALL, seed=1)
    assert a.eids == b.eids == c.eids and a.cases == b.cases
    eid = a.ordinary_eids[-1]
    one_a, one_b, one_c = (One(cache_dir=i.root, mode="local") for i in (a, b, c))
    signal_a = load_photometry_signal(one_a, eid)
    pd.testing.assert_frame_equal(signal_a, load_photometry_signal(one_b, eid))
    assert not signal_a["Region0G"].equals(load_photometry_signal(one_c, eid)["Region0G"])


def test_reused_when_unchanged_and_rebuilt_when_arguments_change(tmp_path):
    root = tmp_path / "demo"
    first = make_demo_one_cache(root, **SMALL)
    written = (root / "datasets.pqt").stat().st_mtime_ns
    assert make_demo_one_cache(root, **SMALL) == first
    assert (root / "datasets.pqt").stat().st_mtime_ns == written  # reused, not regenerated
    longer = make_demo_one_cache(root, **{**SMALL, "duration_s": 40.0})
    signal = load_photometry_signal(One(cache_dir=root, mode="local"), longer.eids[-1])
    assert len(signal) == 2 * 40 * 30


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "data.txt").write_text("not a demo")
    with pytest.raises(FileExistsError, match="not a demo ONE cache"):
        make_demo_one_cache(tmp_path, **SMALL)
    assert (tmp_path / "data.txt").exists()


def test_too_few_sessions_for_the_planted_cases(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        make_demo_one_cache(tmp_path / "d", n_sessions=MIN_PLANTED_SESSIONS - 1)
    plain = make_demo_one_cache(tmp_path / "p", n_sessions=3, duration_s=10.0, planted=False)
    assert len(plain.eids) == 3 and not plain.cases and plain.excluded_subject is None
