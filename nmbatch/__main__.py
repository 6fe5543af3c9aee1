"""``nmbatch`` / ``python -m nmbatch``: list jobs, run one, show a cache's state or report it."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

from nmbatch.engine import AnalysisCache, NmbatchError
from nmbatch.engine.cli import main as run_job_main
from nmbatch.engine.errors import EXIT_OK, EXIT_USAGE
from nmbatch.engine.summary import format_status

JOB_GROUP = "nmbatch.jobs"


def _jobs() -> dict:
    return {ep.name: ep for ep in entry_points(group=JOB_GROUP)}


def report(cache_dir: Path, output: Path | None, jobs: dict) -> int:
    """``nmbatch report DIR``: write the cache's HTML report with its job's section."""
    try:
        cache = AnalysisCache.open(cache_dir)
    except NmbatchError as exc:
        print(f"nmbatch report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from nmbatch.engine.report import write_report  # bokeh: only for the report

    job = jobs.get(cache.name)
    if job is None:
        print(
            f"nmbatch report: no installed job is named {cache.name!r}: "
            "the report has the engine's sections only",
            file=sys.stderr,
        )
    path = write_report(cache_dir, job.load() if job else None, output)
    print(f"report: {path}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> NoReturn:
    argv = sys.argv[1:] if argv is None else argv
    jobs = _jobs()
    if argv and argv[0] == "run" and len(argv) > 1 and argv[1] in jobs:
        run_job_main(jobs[argv[1]].load(), argv[2:])
    if argv and argv[0] == "plan" and len(argv) > 1 and argv[1] in jobs:
        run_job_main(jobs[argv[1]].load(), [*argv[2:], "--plan"])
    if argv and argv[0] in jobs:
        run_job_main(jobs[argv[0]].load(), argv[1:])
    parser = argparse.ArgumentParser(
        prog="nmbatch",
        description="Resumable, config-tracked batch analyses on Dask.",
        epilog=f"Run a job: nmbatch run JOB [options]. Jobs: {', '.join(jobs)}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="show a cache's config, counts and errors")
    status.add_argument("cache_dir", help="the cache folder, e.g. nmbatch-output/photometry")
    status.add_argument("--all", action="store_true", help="list every failed item")
    html = sub.add_parser(
        "report", help="write a cache's HTML report (runs, failures, the job's plots)"
    )
    html.add_argument(
        "cache_dir", type=Path, help="the cache folder, e.g. nmbatch-output/photometry"
    )
    html.add_argument(
        "--output", type=Path, metavar="FILE", help="where to write it (default: DIR/report.html)"
    )
    sub.add_parser("jobs", help="list the installed jobs")
    sub.add_parser("plan", help="what a job would run and why: nmbatch plan JOB [options]")
    run = sub.add_parser("run", help="run a job: nmbatch run JOB --help")
    run.add_argument("job", choices=sorted(jobs))
    args = parser.parse_args(argv)
    if args.command == "jobs":
        for name, ep in sorted(jobs.items()):
            job = ep.load()
            print(f"{name:<20} {job.description}  (python -m {job.__module__.rsplit('.', 1)[0]})")
        sys.exit(EXIT_OK)
    if args.command == "report":
        sys.exit(report(args.cache_dir, args.output, jobs))
    try:
        cache = AnalysisCache.open(args.cache_dir)
    except NmbatchError as exc:
        print(f"nmbatch status: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    print(format_status(cache, show_all=args.all))
    sys.exit(EXIT_OK)


if __name__ == "__main__":
    main()
