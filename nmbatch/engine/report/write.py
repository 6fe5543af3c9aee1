"""``write_report``: the HTML report of one cache folder, written atomically.

The run calls it at its end and ``nmbatch report DIR`` calls it on demand. It reads the cache
through its public API only (a reader: it takes no lock, so it works while a run writes), and
asks the job class for its own sections. A job section that fails is shown as that failure,
and the rest of the report is still written.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.report.cache_sections import failures_section, overview_section, runs_section
from nmbatch.engine.report.html import render_report
from nmbatch.engine.report.runs import read_runs
from nmbatch.engine.report.section import ReportSection
from nmbatch.engine.store import atomic_write

if TYPE_CHECKING:
    from nmbatch.engine.job import Job

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def job_sections(job_cls: type[Job] | None, cache: AnalysisCache) -> list[ReportSection]:
    """The job's own sections; a section saying why when there are none or they failed."""
    if job_cls is None:
        return [
            ReportSection(
                "Job section",
                f"No job section: no installed job is named {cache.name!r}, so only the "
                "engine's sections are shown.",
            )
        ]
    try:
        return list(job_cls.report_sections(cache))
    except Exception as exc:  # a job's plotting bug must not cost the rest of the report
        log.warning("the %s job's report section failed", job_cls.name, exc_info=True)
        return [
            ReportSection(
                f"{job_cls.name}: section not drawn",
                f"The job's report section failed ({type(exc).__name__}: {exc}). "
                f"Traceback:\n{traceback.format_exc(limit=8)}",
            )
        ]


def write_report(
    cache_dir: Path, job_cls: type[Job] | None = None, output: Path | None = None
) -> Path:
    """Write the self-contained HTML report of ``cache_dir`` and return its path.

    Parameters
    ----------
    cache_dir : Path
        The cache folder (``<output>/<analysis>``).
    job_cls : Job subclass, optional
        The job whose :meth:`~nmbatch.engine.job.Job.report_sections` add its own plots;
        None: only the engine's sections.
    output : Path, optional
        Where to write; default ``<cache_dir>/report.html``.
    """
    cache_dir = Path(cache_dir)
    output = Path(output) if output is not None else cache_dir / REPORT_FILE
    cache = AnalysisCache.open(cache_dir)
    runs = read_runs(cache_dir)
    sections = [
        overview_section(cache),
        runs_section(runs, output.parent.resolve()),
        failures_section(cache),
        *job_sections(job_cls, cache),
    ]
    now = datetime.now(UTC).isoformat(sep=" ", timespec="seconds")
    html = render_report(
        f"nmbatch report: {cache.name}", f"{cache_dir.resolve()}, written {now}", sections
    )
    atomic_write(output, html.encode("utf-8"))
    return output
