"""The HTML report: run history read from runs/, and real runs' reports in a real browser.

Run folders are written here in the format every run writes (``runs/<start>/run.json``), with the
partial cases a crash leaves; the browser is Debian's headless chromium with its network cut.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser import browser_missing, chromium, open_report
from conftest import run_job

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.report import read_runs, write_report
from nmbatch.engine.report.runs import RUN_FILE, RUNS_DIR
from nmbatch.synthetic.job import SyntheticJob

JOB = "nmbatch.synthetic"
needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


def write_run(cache_dir: Path, started: datetime, record: dict | str | None) -> Path:
    """A run folder as a run leaves it: run.json (a dict, raw text, or none at all)."""
    folder = cache_dir / RUNS_DIR / started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True)
    if isinstance(record, dict):
        (folder / RUN_FILE).write_text(json.dumps({"started": started.isoformat(), **record}))
    elif isinstance(record, str):
        (folder / RUN_FILE).write_text(record)
    return folder


FINISHED = {
    "finished": "2020-01-02T10:02:00+00:00",
    "duration_s": 120.5,
    "command": "python -m nmbatch.synthetic --items 30",
    "listed": 30,
    "done": 27,
    "failed": 3,
    "skipped": 0,
    "interrupted": False,
    "config_hash": "aaaa1111",
    "provenance_hash": "pppp1111",
    "config_change": None,
    "performance_report": "dask-performance.html",
}
CONTINUED = {
    **FINISHED,
    "finished": "2020-01-03T10:01:00+00:00",
    "duration_s": 60.0,
    "done": 3,
    "skipped": 27,
    "config_hash": "bbbb2222",
    "config_change": {
        "decision": "continue",
        "changes": [{"key": "sliding_kwargs.w_len", "cached": 120, "current": 180}],
    },
    "performance_report": None,
}
CRASHED = {"finished": None, "command": "python -m nmbatch.synthetic", "config_hash": "bbbb2222"}


def plant_history(cache_dir: Path) -> None:
    """Four runs of 2020: finished, continued after a parameter change, crashed, no run.json."""
    first = write_run(cache_dir, datetime(2020, 1, 2, 10, 0, tzinfo=UTC), FINISHED)
    (first / "dask-performance.html").write_text("<html>Dask performance report</html>")
    write_run(cache_dir, datetime(2020, 1, 3, 10, 0, tzinfo=UTC), CONTINUED)
    write_run(cache_dir, datetime(2020, 1, 4, 10, 0, tzinfo=UTC), CRASHED)
    write_run(cache_dir, datetime(2020, 1, 5, 10, 0, tzinfo=UTC), None)


def test_run_history_is_read_whatever_a_run_left(tmp_path):
    plant_history(tmp_path)
    write_run(tmp_path, datetime(2020, 1, 6, 10, 0, tzinfo=UTC), '{"started": "2020-01-06T10')
    runs = read_runs(tmp_path)
    assert [r.started.day for r in runs] == [2, 3, 4, 5, 6], "oldest first, none dropped"
    first, continued, crashed, unwritten, torn = runs
    assert first.state == "finished" and first.duration_s == 120.5
    assert (first.done, first.failed, first.skipped, first.listed) == (27, 3, 0, 30)
    assert first.performance_report == first.folder / "dask-performance.html"
    assert continued.change_decision == "continue"
    assert [(c.key, c.cached, c.current) for c in continued.changes] == [
        ("sliding_kwargs.w_len", 120, 180)
    ]
    assert crashed.state == "not finished" and crashed.done is None and not crashed.problem
    assert unwritten.state == "not finished" and "no run.json" in unwritten.problem
    assert "unreadable" in torn.problem
    assert read_runs(tmp_path / "nowhere") == []


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory) -> Path:
    """A synthetic demo run through its command line: 30 items, 3 planted failures."""
    cwd = tmp_path_factory.mktemp("report")
    fail = [a for i in (4, 9, 17) for a in ("--fail", f"item-{i:06d}")]
    done = run_job(JOB, "--output", "out", "--items", "30", *fail, "--workers", "2", cwd=cwd)
    assert done.returncode == 1, done.stdout + done.stderr
    cache_dir = cwd / "out" / "synthetic"
    plant_history(cache_dir)
    return cache_dir


def test_the_report_is_one_file_with_nothing_to_fetch(demo_cache):
    path = write_report(demo_cache, SyntheticJob)
    assert path == demo_cache / "report.html"
    html = path.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import|url\(http", html)
    assert "cdn.bokeh.org" not in html and "Bokeh.embed" in html
    assert "planted failure in item-000009" in html
    assert "sliding_kwargs.w_len: 120 -&gt; 180" in html
    assert 'href="runs/20200102T100000Z/dask-performance.html"' in html
    elsewhere = write_report(demo_cache, SyntheticJob, demo_cache.parent / "reports" / "r.html")
    assert 'href="../synthetic/runs/20200102T100000Z/dask-performance.html"' in (
        elsewhere.read_text()
    )


@needs_browser
def test_a_demo_runs_report_renders_offline_every_plot_drawn(demo_cache):
    view = open_report(write_report(demo_cache, SyntheticJob), "report-synthetic.png")
    assert view.errors == [] and view.requests == []
    assert view.n_plots == 3 and view.blank_plots == []  # runs, failures, values
    for text in (
        "27 items done, 3 failed",
        "ValueError",
        "planted failure in item-000017",
        "not finished",
        "no run.json",
        "continue: sliding_kwargs.w_len: 120 -> 180",
        "27 values",
    ):
        assert text in view.text, text


@needs_browser
def test_the_failed_items_filter_and_sort_in_the_page(demo_cache, tmp_path):
    path = write_report(demo_cache, SyntheticJob, tmp_path / "report.html")
    with chromium(offline=True) as context:
        page = context.new_page()
        page.goto(path.as_uri())
        block = page.locator(".table-block", has_text="Failed items")
        rows = block.locator("tbody tr")
        assert block.locator(".filter-count").inner_text() == "3 of 3 rows"
        block.locator("input.table-filter").fill("item-000017 compute")
        assert block.locator(".filter-count").inner_text() == "1 of 3 rows"
        visible = [r.inner_text() for r in rows.all() if r.is_visible()]
        assert len(visible) == 1 and "planted failure in item-000017" in visible[0]
        block.locator("input.table-filter").fill("")
        header = block.locator("th", has_text="item_id")
        header.click()
        header.click()  # descending
        assert header.get_attribute("aria-sort") == "descending"
        assert rows.first.inner_text().startswith("item-000017")


@needs_browser
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--items", "0"], "No item has finished yet"),
        (["--items", "2", "--fail", "item-000000", "--fail", "item-000001"], "No item finished"),
    ],
    ids=["zero-results", "only-failures"],
)
def test_a_report_with_nothing_done_still_renders_and_says_so(request, tmp_path, args, says):
    done = run_job(JOB, "--output", "out", "--workers", "1", *args, cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr
    report = subprocess.run(
        [sys.executable, "-m", "nmbatch", "report", "out/synthetic"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == "report: out/synthetic/report.html"
    view = open_report(
        tmp_path / "out" / "synthetic" / "report.html", f"report-{request.node.callspec.id}.png"
    )
    assert view.errors == [] and view.requests == [] and view.blank_plots == []
    assert says in view.text
    assert "No values yet" in view.text


def test_a_cache_of_no_installed_job_gets_the_engines_sections(tmp_path):
    with AnalysisCache("retired_job", {"threshold": 3}, data_dir=tmp_path) as cache:
        cache.check_config()
        cache.add("a", {"x": 1.0}, label="A")
        cache.add_error("b", ValueError("bad input"), label="B", stage="load")
        cache.save()
    out = subprocess.run(
        [sys.executable, "-m", "nmbatch", "report", str(tmp_path / "retired_job")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "no installed job is named 'retired_job'" in out.stderr
    html = (tmp_path / "retired_job" / "report.html").read_text()
    assert "No job section" in html and "bad input" in html and "threshold" in html


class BrokenSectionJob(SyntheticJob):
    @classmethod
    def report_sections(cls, cache):
        raise KeyError("no such column")


def test_a_failing_job_section_costs_only_that_section(demo_cache, tmp_path):
    path = write_report(demo_cache, BrokenSectionJob, tmp_path / "r.html")
    html = path.read_text()
    assert "section not drawn" in html and "KeyError: &#x27;no such column&#x27;" in html
    assert "planted failure in item-000004" in html, "the engine's sections are all there"


def test_report_of_a_folder_that_is_no_cache_is_a_usage_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nmbatch", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "is not an nmbatch cache" in out.stderr
