"""Text a person reads: the closing summary of a run and ``nmbatch status``."""

from __future__ import annotations

from collections import Counter

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import format_config
from nmbatch.engine.job import Job, Listing
from nmbatch.engine.runner import RunReport

MAX_LISTED_FAILURES = 10


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def error_table(counts: Counter, indent: str = "    ") -> list[str]:
    """Failures grouped by (stage, error type), most frequent first."""
    if not counts:
        return []
    width = max(len(stage) for stage, _ in counts)
    return [
        f"{indent}{stage:<{width}}  {etype:<24} {n:>6}"
        for (stage, etype), n in counts.most_common()
    ]


def format_summary(
    job: Job, cache: AnalysisCache, listing: Listing | None, report: RunReport, rerun: str
) -> str:
    """The closing summary: counts, failures by stage and type, where outputs are, what next."""
    title = "interrupted" if report.interrupted else "finished"
    not_run = report.todo - report.done - report.n_failed
    rows = [
        ("listed", report.listed, ""),
        ("selected", report.selected, "--start/--end/--only"),
        ("skipped, done before", report.skipped_done, ""),
        ("skipped, output exists", report.skipped_complete, ""),
        ("skipped, failed before", report.skipped_failed, "--retry-errors runs them again"),
        ("done now", report.done, ""),
        ("failed now", report.n_failed, ""),
        ("not run (stopped early)", not_run, ""),
    ]
    always = {"listed", "done now", "failed now"}
    lines = [f"=== {job.name}: {title} in {_duration(report.elapsed_s)} ==="]
    if report.selected == report.listed:
        rows = [row for row in rows if row[0] != "selected"]
    for name, n, note in rows:
        if n or name in always:
            lines.append(f"  {name:<26}{n:>7}  {note}".rstrip())
    lines += error_table(report.failed)
    for item_id, label, stage, message in report.failed_items[:MAX_LISTED_FAILURES]:
        first_line = (message.splitlines() or [""])[0][:160]
        lines.append(f"    - {item_id} ({label}) at {stage}: {first_line}")
    if len(report.failed_items) > MAX_LISTED_FAILURES:
        lines.append(f"    ... and {len(report.failed_items) - MAX_LISTED_FAILURES} more")
    where = cache.directory or "(in memory)"
    lines.append(f"  cache: {where}  ({cache.n_done} done, {cache.n_failed} failed in all)")
    lines += [f"  {line}" for line in job.summary_lines(cache, listing)]
    if report.interrupted:
        lines.append(f"  Stopped early; what finished is saved. Resume with: {rerun}")
    elif report.n_failed or report.skipped_failed:
        lines.append(f"  Details: nmbatch status {where}")
        lines.append(f"  Retry the failures: {rerun} --retry-errors")
    return "\n".join(lines)


def format_status(cache: AnalysisCache) -> str:
    """State of a cache folder: config, counts, errors by stage and type, last update, lock."""
    manifest = cache.manifest
    lines = [f"=== {cache.name}: {cache.directory} ==="]
    lines.append(
        f"  created {manifest.get('created', '?')}, updated {manifest.get('updated', '?')}"
    )
    holder = cache.store.lock_holder()
    if holder:
        lines.append(
            f"  a run is writing now: pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
            f"since {holder.get('started', '?')}"
        )
    lines.append(f"  done {cache.n_done}, failed {cache.n_failed}")
    errors = cache.get_errors()
    if len(errors):
        lines.append("  failed items by stage and error type:")
        counts = Counter(zip(errors["stage"], errors["error_type"], strict=True))
        lines += error_table(counts)
    history = manifest.get("config_history", [])
    if history:
        last = history[-1]
        lines.append(
            f"  parameters changed {len(history)} time(s); "
            f"last on {last['replaced']} ({last['decision']})"
        )
    lines.append("")
    lines.append(format_config(cache.name, manifest.get("config", {})))
    return "\n".join(lines)
