"""The HTML report of a cache: run history, failures, and a section each job fills.

``write_report(cache_dir, job_cls)`` writes ``<cache>/report.html``, one self-contained file
(BokehJS inlined) that opens offline. Jobs add their part through
:meth:`nmbatch.engine.job.Job.report_sections`, returning :class:`ReportSection` records.
"""

from nmbatch.engine.report.runs import RunRecord, read_runs
from nmbatch.engine.report.section import Link, ReportSection, Table
from nmbatch.engine.report.write import REPORT_FILE, write_report

__all__ = [
    "REPORT_FILE",
    "Link",
    "ReportSection",
    "RunRecord",
    "Table",
    "read_runs",
    "write_report",
]
