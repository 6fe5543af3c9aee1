"""Text a person reads: the closing summary of a run and ``nmbatch status``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.commit import staged_tasks
from nmbatch.engine.config import format_config
from nmbatch.engine.job import Job, Listing
from nmbatch.engine.plan import (
    CODE_CHANGED,
    DONE,
    INPUT_CHANGED,
    OUTPUT_EXISTS,
    OUTPUT_MISSING,
    PARAMS_CHANGED,
    Plan,
)
from nmbatch.engine.runner import RunReport
from nmbatch.engine.runs import RunRecord
from nmbatch.engine.store import DirectoryStore

MAX_LISTED_FAILURES = 10
MESSAGE_WIDTH = 150


def shorten(text: str, width: int = MESSAGE_WIDTH) -> str:
    """The first line of ``text``, cut to ``width`` characters with an ellipsis if longer."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


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


def failure_lines(failures: Iterable[tuple[str, str, str, str]], limit: int | None) -> list[str]:
    """One line per failed item: id (label) at stage: message, up to ``limit``."""
    failures = list(failures)
    shown = failures if limit is None else failures[:limit]
    lines = [
        f"    - {item_id}" + (f" ({label})" if label else "") + f" at {stage}: {shorten(message)}"
        for item_id, label, stage, message in shown
    ]
    if len(failures) > len(shown):
        lines.append(f"    ... and {len(failures) - len(shown)} more")
    return lines


def format_summary(
    job: Job,
    cache: AnalysisCache,
    listing: Listing | None,
    plan: Plan,
    report: RunReport,
    rerun: str,
    record: RunRecord | None = None,
    html: Path | None = None,
) -> str:
    """The closing summary: counts, failures by stage and type, where outputs are, what next."""
    title = "interrupted" if report.interrupted else "finished"
    kept = plan.count(PARAMS_CHANGED) + plan.count(CODE_CHANGED)
    not_run = len(plan.todo) - report.done - report.n_failed
    rows = [
        ("listed", plan.listed, ""),
        ("selected", plan.selected, "--start/--end/--only"),
        ("skipped, done before", plan.count(DONE) + kept, ""),
        ("skipped, output exists", plan.count(OUTPUT_EXISTS), ""),
        ("skipped, failed before", len(plan.skipped_failed), "--retry-errors runs them again"),
        ("skipped, over --limit", plan.limited, ""),
        ("run again, input changed", plan.count(INPUT_CHANGED), ""),
        ("run again, output missing", plan.count(OUTPUT_MISSING), "the job's own check"),
        ("done now", report.done, ""),
        ("failed now", report.n_failed, ""),
        ("not run (stopped early)", max(not_run, 0) if report.interrupted else 0, ""),
    ]
    always = {"listed", "done now", "failed now"}
    lines = [f"=== {job.name}: {title} in {_duration(report.elapsed_s)} ==="]
    if plan.selected == plan.listed:
        rows = [row for row in rows if row[0] != "selected"]
    for name, n, note in rows:
        if n or name in always:
            lines.append(f"  {name:<28}{n:>7}  {note}".rstrip())
    lines += error_table(report.failed)
    lines += failure_lines(report.failed_items, MAX_LISTED_FAILURES)
    if plan.selected == 0 and plan.listed:
        lines.append("  warning: the selection matches no listed item (--start/--end/--only)")
    where = cache.directory or "(in memory)"
    lines.append(f"  cache: {where}  ({cache.n_done} done, {cache.n_failed} failed in all)")
    report_file = (
        record.path(record.performance_report) if record and record.performance_report else None
    )
    if report_file is not None and report_file.exists():
        lines.append(f"  Dask performance report: {report_file}")
    if html is not None:
        lines.append(f"  report: {html}")
    lines += [f"  {line}" for line in job.summary_lines(cache, listing)]
    if report.interrupted:
        lines.append(f"  Stopped early; every finished item is saved. Resume with: {rerun}")
    elif report.n_failed or plan.skipped_failed:
        lines.append(f"  Details: nmbatch status {where}")
        lines.append(f"  Retry the failures: {rerun} --retry-errors")
    return "\n".join(lines)


def format_status(cache: AnalysisCache, show_all: bool = False, limit: int = 20) -> str:
    """State of a cache folder: config, counts, failed items, last update, lock, what is pending."""
    manifest = cache.manifest
    lines = [f"=== {cache.name}: {cache.directory} ==="]
    if cache.manifest_problem:
        lines.append(f"  warning: {cache.manifest_problem} (the next run rebuilds it)")
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
    if isinstance(cache.store, DirectoryStore) and not holder:
        staged = [s for s in staged_tasks(cache.store) if s.record is not None]
        if staged:
            lines.append(
                f"  finished, not yet committed: {len(staged)} task(s) (the next run commits them)"
            )
    errors = cache.get_errors()
    if len(errors):
        lines.append("  failed items by stage and error type:")
        counts = Counter(zip(errors["stage"], errors["error_type"], strict=True))
        lines += error_table(counts)
        lines.append(
            "  failed items" + ("" if show_all else f" (up to {limit}; --all for all)") + ":"
        )
        failures = zip(
            errors[cache.id_column],
            errors[cache.label_column].fillna(""),
            errors["stage"],
            errors["error_message"].fillna(""),
            strict=True,
        )
        lines += failure_lines(failures, None if show_all else limit)
    history = manifest.get("config_history", [])
    if history:
        last = history[-1]
        lines.append(
            f"  parameters changed {len(history)} time(s); "
            f"last on {last.get('replaced', '?')} ({last.get('decision', '?')})"
        )
    provenance = manifest.get("provenance") or {}
    if provenance:
        libraries = ", ".join(f"{k} {v}" for k, v in provenance.get("libraries", {}).items())
        lines.append(
            f"  made by nmbatch {provenance.get('nmbatch_version', '?')}, job code version "
            f"{provenance.get('code_version', '?')}" + (f"; {libraries}" if libraries else "")
        )
    lines.append("")
    lines.append(format_config(cache.name, manifest.get("config", {})))
    return "\n".join(lines)
