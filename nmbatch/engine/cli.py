"""The command line every job shares: ``python -m nmbatch.<job> [options]``.

Exit codes: 0 every selected item is done (or nothing to do by design); 1 the run
finished but some items failed (now or before); 2 a problem with the command, its
configuration, its inputs or its environment (a bad option, an unreadable input, an
unresolved parameter change, a read-only or full output disk): nothing ran, or the
run stopped and kept what finished; 3 nmbatch itself broke (a bug); 130 interrupted
(Ctrl-C or SIGTERM): what finished is saved.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from nmbatch.engine.clusters import BACKENDS
from nmbatch.engine.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    NmbatchError,
    NothingToRun,
    environment_problem,
)
from nmbatch.engine.job import Job
from nmbatch.engine.session import interrupt_on_signals, run_session
from nmbatch.engine.settings import setting

EXIT_ENGINE_ERROR = 3
log = logging.getLogger("nmbatch")


def _package(job_cls: type[Job]) -> str:
    return job_cls.__module__.rsplit(".", 1)[0]


def whole_number(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value}: must be {minimum} or more{meaning}")
        return value

    return parse


positive = whole_number(1)
index = whole_number(0, " (an index into the listing)")


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
        help="folder for the cache and outputs; the cache is DIR/<job> "
        f"(default: the nmbatch.output setting, '{setting('output')}')",
    )
    run.add_argument("--start", type=index, help="first item index in the listing (0-based)")
    run.add_argument("--end", type=index, help="item index to stop before (exclusive)")
    run.add_argument(
        "--limit",
        type=whole_number(0),
        help="run at most this many items (after skipping done ones)",
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
    run.add_argument(
        "--batch-size",
        type=positive,
        metavar="N",
        help="at most N items in one task, made durable together (default: as many short "
        "items as fill the nmbatch.runner.task-duration-target, at most "
        f"{setting('runner.max-items-per-task')})",
    )
    run.add_argument(
        "--plan",
        action="store_true",
        help="print how many items would run and why, and exit (nothing runs)",
    )
    run.add_argument("--verbose", action="store_true", help="with --plan: list the items")
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
        help="what to do if parameters, code or libraries changed since the cached run, when "
        "there is no terminal to ask at",
    )
    params.add_argument(
        "--force",
        action="store_true",
        help="recompute everything if parameters, code or libraries changed, without asking",
    )
    params.add_argument("--print-config", action="store_true", help="show the parameters and exit")

    cluster = parser.add_argument_group("cluster")
    cluster.add_argument(
        "--cluster",
        choices=sorted(BACKENDS),
        help=f"where workers run (default: {setting('cluster.kind')})",
    )
    cluster.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="number of workers (default: one per core locally)",
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use a running Dask scheduler instead of starting a cluster",
    )
    cluster.add_argument(
        "--dashboard-address",
        metavar="HOST:PORT",
        help=f"where the dashboard listens (default: {setting('cluster.dashboard-address')}; "
        "':PORT' or '0.0.0.0:PORT' is every interface)",
    )
    cluster.add_argument(
        "--dry-run", action="store_true", help="print what would be started or submitted and exit"
    )
    for backend in BACKENDS.values():
        backend.add_arguments(cluster)
    return parser


def configure_logging(debug: bool) -> None:
    """nmbatch's own lines on the terminal; Dask's only with ``--debug`` (else the run's log)."""
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
            logging.getLogger(name).setLevel(logging.CRITICAL)


def run(job_cls: type[Job], argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv``, run the job, print the summary; return the exit code."""
    args = build_parser(job_cls, prog).parse_args(argv)
    configure_logging(args.debug)
    interrupt_on_signals()
    args.output = Path(setting("output", args.output)).expanduser().resolve()
    program = shlex.split(prog) if prog else ["python", "-m", _package(job_cls)]
    rerun = shlex.join([*program, *(sys.argv[1:] if argv is None else argv)])
    try:
        return run_session(job_cls, args, rerun)
    except NothingToRun as exc:
        print(f"{job_cls.name}: {exc}")
        return EXIT_OK
    except NmbatchError as exc:
        print(f"{job_cls.name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        problem = environment_problem(exc)
        if problem is None:
            raise
        print(
            f"{job_cls.name}: error: {problem}. Items that finished are kept in the cache; "
            f"free the disk or choose another --output, then rerun: {rerun}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{job_cls.name}: interrupted before any item ran. Rerun: {rerun}", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(job_cls: type[Job], argv: list[str] | None = None) -> NoReturn:
    """Entry point of ``python -m nmbatch.<job>``."""
    try:
        code = run(job_cls, argv)
    except Exception:
        log.exception("nmbatch itself failed (a bug: please report it with this traceback)")
        code = EXIT_ENGINE_ERROR
    sys.exit(code)
