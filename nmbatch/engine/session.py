"""One run of a job, as data: flags -> parameters -> listing -> plan -> tasks -> summary.

Everything a run can refuse is checked before anything is written: the parameters
(types, then the job's own rules), the selection, the cluster settings, the inputs
(the listing). Only then is the cache opened, the parameter or provenance change
decided, and items run. Each task's outcome is durable on the worker before the
driver hears of it; Ctrl-C or SIGTERM stops cleanly, and a second one stops at once,
both keeping every finished item.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import dask.config
from distributed import performance_report

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.clusters import backend_for, connect, dashboard_link
from nmbatch.engine.config import format_config, get_analysis_config, provenance
from nmbatch.engine.decide import decide
from nmbatch.engine.errors import EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK, ConfigError
from nmbatch.engine.job import Job, Listing
from nmbatch.engine.plan import Plan, Selection, format_plan, make_plan
from nmbatch.engine.runner import Pacing, RunReport, finish, run_plan
from nmbatch.engine.runs import DASK_LOG, PERFORMANCE_REPORT, RunRecord
from nmbatch.engine.settings import seconds, setting
from nmbatch.engine.summary import format_summary
from nmbatch.engine.worker_setup import route_logs_to_file

log = logging.getLogger("nmbatch")
_stopping = {"active": False, "message": ""}


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM stop the run cleanly; a second one, during that, stops at once."""

    def handler(signum: int, frame: object) -> None:
        if _stopping["active"]:
            sys.stderr.write(_stopping["message"])
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _stop_at_once_on_next_signal(name: str, rerun: str) -> None:
    _stopping.update(
        active=True,
        message=f"\n{name}: interrupted again: stopped at once. Every finished item is kept "
        f"(the next run commits what this one did not). Resume with: {rerun}\n",
    )


def adopt_former_cache(job_cls: type[Job], output: Path) -> None:
    """Rename a cache folder left under one of the job's former names to its name."""
    target = output / job_cls.name
    for former in job_cls.former_names:
        folder = output / former
        if folder.is_dir() and not target.exists():
            folder.rename(target)
            print(f"{job_cls.name}: renamed the cache {folder} (the job's former name) to {target}")


def _selection(args: argparse.Namespace) -> Selection:
    selection = Selection(args.start, args.end, args.limit, args.only, args.retry_errors)
    selection.validate()
    return selection


def _pacing(args: argparse.Namespace, expected_threads: int) -> Pacing:
    return Pacing(
        tasks_per_thread=setting("runner.tasks-per-thread"),
        expected_threads=expected_threads,
        task_duration_target=seconds("runner.task-duration-target"),
        max_items_per_task=setting("runner.max-items-per-task", args.batch_size),
        allowed_failures=setting("runner.allowed-failures"),
        progress=False if args.no_progress else None,
        progress_interval=seconds("runner.progress-interval"),
        refresh_interval=seconds("cache.refresh-interval"),
    )


def cache_for_job(
    job: Job,
    params: dict,
    output: Path | None,
    lock: bool = True,
    name: str | None = None,
    **kwargs: Any,
) -> AnalysisCache:
    """The job's cache under ``output`` (in memory when None), with this run's provenance."""
    return AnalysisCache(
        name or job.name,
        params,
        data_dir=output,
        id_column=job.id_column,
        label_column=job.label_column,
        table_schemas=job.table_schemas(params),
        provenance=provenance(job.code_version, job.result_libraries),
        merge_factor=setting("cache.merge-factor"),
        lock=lock,
        **kwargs,
    )


def run_session(job_cls: type[Job], args: argparse.Namespace, rerun: str) -> int:
    """The whole run; returns the exit code (NmbatchError and OSError go to the caller)."""
    params = get_analysis_config(job_cls.name, args.config, args.set)
    if args.print_config:
        print(format_config(job_cls.name, params))
        return EXIT_OK
    backend = None if args.scheduler else backend_for(args)
    if args.dry_run:
        if backend is None:
            raise ConfigError("--dry-run starts nothing with --scheduler: there is nothing to show")
        print(backend.dry_run())
        return EXIT_OK
    job = job_cls.from_args(args)
    job.validate_params(params)
    params = job.resolve_params(params)
    selection = _selection(args)
    if backend is not None:
        backend.validate()
    listing = job.list_items(params)
    if args.plan:
        return _print_plan(job, listing, params, args, selection)
    adopt_former_cache(job_cls, args.output)
    with cache_for_job(job, params, args.output, lock=True) as cache:
        cache.print_config()
        check = cache.config_check()
        decision = decide(cache, force=args.force, on_change=args.on_config_change, check=check)
        plan = make_plan(job, listing, params, cache.index, cache.stamp, selection, False)
        for wanted in plan.unmatched_only:
            log.warning("%s: --only %s matches no listed item", job.name, wanted)
        record = RunRecord(
            cache.store,
            rerun,
            cache.config,
            cache.stamp.config_hash,
            cache.provenance,
            cache.stamp.provenance_hash,
            check.history_entry(decision) if decision in ("recompute", "continue") else None,
        )
        report = RunReport(listed=plan.listed, selected=plan.selected, todo=len(plan.todo))
        for group, members in plan.groups.items():
            report.skipped[group] = len(members)
        record.write()
        try:
            if plan.todo:
                _execute(job, params, cache, listing, plan, report, record, args, backend)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            _stop_at_once_on_next_signal(job.name, rerun)
            finish(cache, job, listing, report)
            record.write(_counts(plan, report), finished=True)
        html = _write_report(cache, type(job)) if setting("report.html") else None
        print(format_summary(job, cache, listing, plan, report, rerun, record, html))
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_ITEMS_FAILED if report.n_failed or plan.skipped_failed else EXIT_OK


def _execute(
    job: Job,
    params: dict,
    cache: AnalysisCache,
    listing: Listing,
    plan: Plan,
    report: RunReport,
    record: RunRecord,
    args: argparse.Namespace,
    backend: Any,
) -> None:
    """Start (or attach to) the cluster and run the plan's items on it."""
    log_file = record.path(DASK_LOG)
    with contextlib.ExitStack() as stack:
        if log_file is not None and not args.debug:
            stack.enter_context(dask.config.set({"nmbatch.run.log-file": str(log_file)}))
            route_logs_to_file(str(log_file), "driver")
        for line in backend.warnings() if backend is not None else []:
            log.warning("%s", line)
        client = stack.enter_context(connect(args, job.worker_preload))
        link, warning = dashboard_link(client, backend)
        print(f"Dask dashboard: {link}", flush=True)
        if warning:
            log.warning("%s", warning)
        print(f"{job.name}: {len(plan.todo)} items to run; cache {cache.directory}", flush=True)
        report_path = record.path(PERFORMANCE_REPORT) if setting("report.performance") else None
        if report_path is not None:
            stack.enter_context(performance_report(filename=str(report_path)))
            record.performance_report = PERFORMANCE_REPORT
        threads = backend.max_threads() or 0 if backend is not None else 0
        run_plan(client, job, params, cache, listing, plan, report, _pacing(args, threads))


def _write_report(cache: AnalysisCache, job_cls: type[Job]) -> Path | None:
    """The cache's HTML report, refreshed after the run; a failure to draw it is only a warning."""
    if cache.directory is None:
        return None
    from nmbatch.engine.report import write_report  # bokeh: only on the driver, only here

    try:
        return write_report(cache.directory, job_cls)
    except Exception as exc:  # the run's results are safe; the report can be redrawn later
        log.warning(
            "the HTML report was not written (%s: %s); nmbatch report %s redraws it",
            type(exc).__name__,
            exc,
            cache.directory,
        )
        return None


def _counts(plan: Plan, report: RunReport) -> dict[str, Any]:
    return {
        "listed": plan.listed,
        "done": report.done + report.adopted,
        "failed": report.n_failed,
        "skipped": plan.selected - len(plan.todo),
        "interrupted": report.interrupted,
    }


def _print_plan(
    job: Job, listing: Listing, params: dict, args: argparse.Namespace, selection: Selection
) -> int:
    """``--plan``: what would run and why, from the cache as it is; writes nothing."""
    names = [job.name, *job.former_names]
    name = next((n for n in names if (args.output / n).is_dir()), None)
    cache = cache_for_job(job, params, args.output if name else None, lock=False, name=name)
    check = cache.config_check()
    if check.state == "changed":
        print(check.describe())
    changed = check.state == "changed"
    plan = make_plan(job, listing, params, cache.index, cache.stamp, selection, changed)
    print(format_plan(job.name, plan, args.verbose))
    if changed:
        print("  The run asks first: recompute / continue / abort (see the diff above).")
    return EXIT_OK
