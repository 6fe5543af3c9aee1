"""The command line every job shares: ``python -m nmbatch.<job> [options]``.

Exit codes: 0 every selected item is done; 1 the run finished but some items
failed (now or before); 2 usage or configuration problem, nothing was run
(an unresolved parameter change included); 3 the engine itself broke;
130 interrupted (Ctrl-C or SIGTERM): what finished is saved.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import NoReturn

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.clusters import BACKENDS, backend_for, connect
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.errors import (
    EXIT_INTERRUPTED,
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    NmbatchError,
)
from nmbatch.engine.job import Job
from nmbatch.engine.runner import RunOptions, execute, select_items
from nmbatch.engine.settings import seconds, setting
from nmbatch.engine.summary import format_summary

EXIT_ENGINE_ERROR = 3
log = logging.getLogger("nmbatch")


def _package(job_cls: type[Job]) -> str:
    return job_cls.__module__.rsplit(".", 1)[0]


def build_parser(job_cls: type[Job], prog: str | None = None) -> argparse.ArgumentParser:
    """The job's options first, then the engine's (run, parameters, cluster)."""
    parser = argparse.ArgumentParser(
        prog=prog or f"python -m {_package(job_cls)}",
        description=f"{job_cls.description}\n\nTracked parameters: jobs/{job_cls.name}.yaml",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job_cls.add_arguments(parser.add_argument_group(f"{job_cls.name} options"))

    run = parser.add_argument_group("run")
    run.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="folder for the cache and outputs; the cache is DIR/<analysis> "
        f"(default: the nmbatch.output setting, '{setting('output')}')",
    )
    run.add_argument("--start", type=int, help="first item index in the listing (0-based)")
    run.add_argument("--end", type=int, help="item index to stop before (exclusive)")
    run.add_argument(
        "--limit", type=int, help="run at most this many items (after skipping done ones)"
    )
    run.add_argument(
        "--only",
        action="append",
        metavar="ID",
        default=[],
        help="run only this item id or label (repeatable)",
    )
    run.add_argument(
        "--retry-errors", action="store_true", help="run items that failed before again"
    )
    run.add_argument("--batch-size", type=int, metavar="N", help="items per saved batch")
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar, log lines instead"
    )
    run.add_argument("--debug", action="store_true", help="verbose logging (also Dask's)")

    params = parser.add_argument_group("parameters (tracked)")
    params.add_argument(
        "--config",
        action="append",
        metavar="FILE",
        default=[],
        help="YAML file of parameter overrides (repeatable)",
    )
    params.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="override one parameter, e.g. --set sliding_kwargs.w_len=180 (repeatable)",
    )
    params.add_argument(
        "--on-config-change",
        choices=["recompute", "continue", "abort"],
        help="what to do if parameters changed since the cached run, when there is "
        "no terminal to ask at",
    )
    params.add_argument(
        "--force",
        action="store_true",
        help="recompute everything if parameters changed, without asking",
    )
    params.add_argument("--print-config", action="store_true", help="show the parameters and exit")

    cluster = parser.add_argument_group("cluster")
    cluster.add_argument(
        "--cluster",
        choices=sorted(BACKENDS),
        help=f"where workers run (default: {setting('cluster.kind')})",
    )
    cluster.add_argument(
        "--workers", type=int, metavar="N", help="number of workers (default: one per core locally)"
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use a running Dask scheduler instead of starting a cluster",
    )
    cluster.add_argument(
        "--dashboard-address",
        metavar="HOST:PORT",
        help=f"where the dashboard listens (default: {setting('cluster.dashboard-address')})",
    )
    cluster.add_argument(
        "--dry-run", action="store_true", help="print what would be started or submitted and exit"
    )
    for backend in BACKENDS.values():
        backend.add_arguments(cluster)
    return parser


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        if debug
        else "%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("nmbatch").setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        for name in ("distributed", "tornado", "bokeh"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _interrupt_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def adopt_former_cache(job_cls: type[Job], output: Path) -> None:
    """Rename a cache folder left under one of the job's former names to its name."""
    target = output / job_cls.name
    for former in job_cls.former_names:
        folder = output / former
        if folder.is_dir() and not target.exists():
            folder.rename(target)
            print(f"{job_cls.name}: renamed the cache {folder} (the job's former name) to {target}")


def run(job_cls: type[Job], argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv``, run the job, print the summary; return the exit code."""
    args = build_parser(job_cls, prog).parse_args(argv)
    _configure_logging(args.debug)
    _interrupt_on_sigterm()
    args.output = Path(setting("output", args.output)).expanduser().resolve()
    program = shlex.split(prog) if prog else ["python", "-m", _package(job_cls)]
    rerun = shlex.join([*program, *(sys.argv[1:] if argv is None else argv)])
    try:
        params = get_analysis_config(job_cls.name, args.config, args.set)
        if args.print_config:
            AnalysisCache(job_cls.name, params, lock=False).print_config()
            return EXIT_OK
        if args.dry_run:
            print(backend_for(args).dry_run())
            return EXIT_OK
        job = job_cls.from_args(args)
        job.validate_params(params)
        params = job.resolve_params(params)
        options = RunOptions(
            retry_errors=args.retry_errors,
            start=args.start,
            end=args.end,
            limit=args.limit,
            only=args.only,
            progress=False if args.no_progress else None,
            tasks_per_thread=setting("runner.tasks-per-thread"),
            task_duration_target=seconds("runner.task-duration-target"),
            max_items_per_task=setting("runner.max-items-per-task"),
            progress_interval=seconds("runner.progress-interval"),
        )
        adopt_former_cache(job_cls, args.output)
        with AnalysisCache.for_job(
            job,
            params,
            args.output,
            batch_size=setting("cache.batch-size", args.batch_size),
            save_interval=seconds("cache.save-interval"),
            compact_after=setting("cache.compact-after"),
        ) as cache:
            cache.print_config()
            cache.check_config(force=args.force, on_change=args.on_config_change)
            listing = job.list_items(params)
            todo, report = select_items(job, listing, params, cache, options)
            if not args.scheduler:
                options.expected_threads = backend_for(args).max_threads() or 0
            if todo:
                with connect(args) as client:
                    print(f"Dask dashboard: {client.dashboard_link}", flush=True)
                    print(
                        f"{job.name}: {len(todo)} items to run; cache {cache.directory}", flush=True
                    )
                    execute(client, job, params, cache, listing, todo, report, options)
            else:
                job.on_saved(cache, listing)
            print(format_summary(job, cache, listing, report, rerun))
    except NmbatchError as exc:
        print(f"{job_cls.name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{job_cls.name}: interrupted before items ran. Rerun: {rerun}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_ITEMS_FAILED if report.n_failed or report.skipped_failed else EXIT_OK


def main(job_cls: type[Job], argv: list[str] | None = None) -> NoReturn:
    """Entry point of ``python -m nmbatch.<job>``."""
    try:
        code = run(job_cls, argv)
    except Exception:
        log.exception("nmbatch itself failed (a bug: please report it with this traceback)")
        code = EXIT_ENGINE_ERROR
    sys.exit(code)
