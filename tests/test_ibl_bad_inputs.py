"""Bad IBL inputs get a clear answer: damaged ONE tables, unparseable dates, empty signals,
and a ONE cache whose sessions have no known type."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_job
from iblutil.io import parquet
from one.alf.cache import make_parquet_db

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.errors import DataSourceError
from nmbatch.engine.job import ItemContext
from nmbatch.ibl.demo import DemoInfo
from nmbatch.ibl.loading import PHOTOMETRY_COLLECTION, SIGNAL_DATASET
from nmbatch.ibl.one_source import OneSource
from nmbatch.photometry.job import PhotometryQCJob

pytest_plugins = ["ibl_fixtures"]
JOB = "nmbatch.photometry"


def copy_of(demo_info: DemoInfo, tmp_path: Path, name: str = "cache") -> Path:
    root = tmp_path / name
    shutil.copytree(demo_info.root, root)
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("table", ["sessions.pqt", "datasets.pqt"])
def test_a_truncated_one_table_is_named_at_listing(demo_info, tmp_path, photometry_params, table):
    root = copy_of(demo_info, tmp_path)
    truncate(root / table)
    for sessions_file in (None, root / "metadata" / "sessions.pqt"):  # ONE's table, or given
        job = PhotometryQCJob(OneSource(root), sessions_file)
        with pytest.raises(DataSourceError, match=rf"{root / table} cannot be read \(ArrowInvalid"):
            job.list_items(photometry_params)


def test_a_truncated_sessions_table_exits_2_with_one_line(demo_info, tmp_path):
    root = copy_of(demo_info, tmp_path)
    truncate(root / "sessions.pqt")
    result = run_job(JOB, "--one-cache", str(root), "--output", "out", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{root / 'sessions.pqt'} cannot be read" in result.stderr


def test_an_unparseable_date_in_a_sessions_file(demo_info, tmp_path, photometry_params):
    sessions = pd.read_parquet(demo_info.sessions_file)
    sessions["date"] = sessions["date"].astype(str)
    sessions.loc[3, "date"] = "2024-13-45"
    path = tmp_path / "sessions.pqt"
    sessions.to_parquet(path)
    job = PhotometryQCJob(OneSource(demo_info.root), path)
    message = (
        rf"sessions table {path}: column 'date' .* '2024-13-45' \(session {sessions['eid'][3]}"
    )
    with pytest.raises(DataSourceError, match=message):
        job.list_items(photometry_params)


def test_an_unparseable_date_in_one_sessions_table(demo_info, tmp_path, photometry_params):
    root = copy_of(demo_info, tmp_path)
    table, meta = parquet.load(root / "sessions.pqt")
    table["date"] = table["date"].astype(str)
    table.iloc[2, table.columns.get_loc("date")] = "yesterday"
    parquet.save(root / "sessions.pqt", table, meta)
    job = PhotometryQCJob(OneSource(root))
    with pytest.raises(DataSourceError, match=rf"{root / 'sessions.pqt'}: .* 'yesterday'"):
        job.list_items(photometry_params)


def test_a_signal_without_rows_fails_at_load_signal_saying_so(
    demo_info, tmp_path, photometry_params
):
    root = copy_of(demo_info, tmp_path)
    job = PhotometryQCJob(OneSource(root))
    item = job.list_items(photometry_params).items[0]
    path = Path(job.source.open().eid2path(item.id)) / PHOTOMETRY_COLLECTION / SIGNAL_DATASET
    pd.read_parquet(path).iloc[:0].to_parquet(path, index=False)
    ctx = ItemContext(item, photometry_params)
    with pytest.raises(ValueError, match=f"{PHOTOMETRY_COLLECTION}/{SIGNAL_DATASET} of session "):
        job.run_item(item, ctx)
    assert ctx.failed_stage == "load_signal"
    assert ctx.flags["load_error"] == "signal: EmptyDatasetError"


@pytest.fixture
def parquet_db_cache(demo_info, tmp_path) -> Path:
    """The demo's session folders indexed by ONE's own make_parquet_db (no task protocols)."""
    root = copy_of(demo_info, tmp_path)
    for name in ("sessions.pqt", "datasets.pqt"):
        (root / name).unlink()
    shutil.rmtree(root / "metadata")
    make_parquet_db(root)
    return root


def test_sessions_of_unknown_type_are_named_in_the_summary(parquet_db_cache, photometry_params):
    job = PhotometryQCJob(OneSource(parquet_db_cache))
    listing = job.list_items(photometry_params)
    assert listing.items == []  # every session is 'misc', and misc is excluded
    text = "\n".join(job.summary_lines(AnalysisCache("photometry", photometry_params), listing))
    n_all = len(listing.excluded)
    assert (
        f"WARNING: {n_all - 2} of {n_all} sessions were excluded because their session type" in text
    )
    assert "make_parquet_db" in text and "--sessions FILE" in text
    assert (
        "'exclude_session_types=[habituation, advanced, neuromodulator, passive, histology]'"
        in text
    )


@pytest.mark.slow
def test_the_summary_fix_works_from_the_command_line(parquet_db_cache, tmp_path):
    args = ["--one-cache", str(parquet_db_cache), "--workers", "1"]
    listed_none = run_job(JOB, *args, "--output", "out", cwd=tmp_path)
    assert listed_none.returncode == 0, listed_none.stderr
    assert "excluded (session type misc)" in listed_none.stdout
    fix = next(line for line in listed_none.stdout.splitlines() if "--set" in line)
    setting = fix.split("--set ", 1)[1].strip().strip("'")
    ran = run_job(JOB, *args, "--output", "out2", "--set", setting, "--limit", "1", cwd=tmp_path)
    assert ran.returncode in (0, 1), ran.stderr
    assert "WARNING" not in ran.stdout
    done = next(line for line in ran.stdout.splitlines() if "done now" in line)
    assert done.split()[-1] == "1"
