"""The dashboard link a run prints serves Dask's live status page, with its task plots, in a
real headless browser (Debian's chromium), locally and with ``--cluster slurm``.

The job is the synthetic one through its command line, with far more work than the test waits
for: the page is checked while items run, then the run is stopped with SIGTERM, as a batch
system stops it, and must stop cleanly (exit code 130).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

import pytest
from browser import artifact, browser_missing, chromium, distinct_colours
from conftest import kill_driver, start_driver
from test_slurm import SMALL, queued_jobs, slurm_missing

JOB = "nmbatch.synthetic"
MIN_PLOTS = 4  # canvases of the status page: memory, processing, task stream, progress ...
TASK_PLOTS = ("Task Stream", "Tasks Processing")
# The task stream's rectangles, counted in the page's own bokeh document (-1: no such plot).
TASK_STREAM_LENGTH = """() => {
  for (const doc of Bokeh.documents)
    for (const model of doc.all_models)
      if (model.title && model.title.text === "Task Stream")
        return model.renderers.reduce(
          (n, r) => n + (r.data_source ? r.data_source.get_length() : 0), 0);
  return -1;
}"""
PLOT_TITLES = """() => {
  const titles = [];
  for (const doc of Bokeh.documents)
    for (const model of doc.all_models)
      if (model.title && model.title.text) titles.push(model.title.text);
  return titles;
}"""

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


def read_until(driver: subprocess.Popen, pattern: str, timeout: float = 240.0) -> re.Match:
    """Read the driver's output line by line until ``pattern`` matches; fail if it exits first."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([driver.stdout], [], [], 1.0)
        if not ready:
            continue
        line = driver.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r} (exit {driver.poll()}):\n{''.join(seen)}")


def check_status_page(link: str, screenshot: str) -> None:
    """The live status page: not the 'needs bokeh' page; its task plots drawn, with tasks."""
    with chromium() as context:
        page = context.new_page()
        page.goto(link)
        assert "needs bokeh" not in page.content()
        page.locator("canvas").nth(MIN_PLOTS - 1).wait_for(state="visible", timeout=60_000)
        page.wait_for_function(f"({TASK_STREAM_LENGTH})() > 0", timeout=60_000)
        assert page.title() == "Dask: Status"
        titles = page.evaluate(PLOT_TITLES)
        assert set(TASK_PLOTS) <= set(titles), titles
        assert any(t.startswith("Progress") for t in titles), titles
        png = page.screenshot(path=artifact(screenshot))
    assert distinct_colours(png) >= 16


def watch_a_run(tmp_path, screenshot: str, *cluster: str) -> None:
    driver = start_driver(
        JOB,
        *("--output", "out", "--items", "2000", "--set", "work_ms=1000", "--no-progress"),
        *("--dashboard-address", "127.0.0.1:0", *cluster),
        cwd=tmp_path,
    )
    try:
        link = read_until(driver, r"Dask dashboard: (\S+)").group(1)
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*/status", link), link
        read_until(driver, r"synthetic: 2000 items to run")
        check_status_page(link, screenshot)
        assert driver.poll() is None, "the page was checked while the job ran"
        os.kill(driver.pid, signal.SIGTERM)
        output, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            kill_driver(driver)
    assert driver.returncode == 130, output
    assert "Stopped early; every finished item is saved" in output


def test_the_printed_dashboard_link_serves_the_live_status_page(tmp_path):
    watch_a_run(tmp_path, "dashboard-local.png", "--workers", "2")


@pytest.mark.slurm
def test_the_dashboard_link_serves_the_status_page_with_slurm_workers(tmp_path):
    reason = slurm_missing()
    if reason:
        pytest.skip(
            f"no SLURM to run --cluster slurm on: {reason}. As root, start the throw-away one "
            "(cluster/local-slurm/start.sh, export the SLURM_CONF it prints)"
        )
    try:
        watch_a_run(tmp_path, "dashboard-slurm.png", "--cluster", "slurm", "--workers", "1", *SMALL)
    finally:
        deadline = time.monotonic() + 120
        while queued_jobs() and time.monotonic() < deadline:
            time.sleep(1)
    assert not queued_jobs(), "the worker jobs ended with their driver"
