"""Workers as SLURM jobs, through dask-jobqueue (``--cluster slurm``).

The scheduler runs inside the driver and listens on every interface (or on the
profile's ``interface``) so that workers on compute nodes reach it; the dashboard
listens only where ``--dashboard-address`` says (127.0.0.1 unless asked): reach it
through an SSH tunnel. Settings come, lowest first, from ``jobqueue.nmbatch``
in nmbatch's ``dask.yaml``, a site profile (``--cluster-profile``), the user's own
Dask config and ``DASK_*`` variables, then the flags below.
"""

from __future__ import annotations

import argparse
import functools
import logging
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.config
import yaml
from distributed.deploy import Cluster
from distributed.utils import format_dashboard_link

from nmbatch.engine.clusters.core import ClusterBackend, register
from nmbatch.engine.errors import ConfigError
from nmbatch.engine.settings import seconds, setting

CONFIG_NAME = "nmbatch"  # jobqueue.nmbatch: no hyphen, see dask.yaml
log = logging.getLogger(__name__)


def walltime_seconds(walltime: str) -> int | None:
    """Seconds in a SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``).

    ``None`` for an unlimited one: workers then get no lifetime.
    """
    if str(walltime).upper() in ("INFINITE", "UNLIMITED"):
        return None
    try:
        days, _, clock = str(walltime).rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if not 1 <= len(parts) <= 3:
            raise ValueError
        if days:  # D-HH[:MM[:SS]]
            parts += [0] * (3 - len(parts))
        elif len(parts) < 3:  # MM[:SS]
            parts = [0, *parts, *[0] * (2 - len(parts))]
        hours, minutes, secs = parts
        return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + secs
    except ValueError:
        raise ConfigError(
            f"walltime {walltime!r}: not a SLURM time limit (MM, HH:MM:SS or D-HH:MM:SS)"
        ) from None


def lifetime_args(walltime_s: int) -> list[str]:
    """``dask worker`` flags that retire a worker before SLURM's walltime kills it.

    A retiring worker hands its tasks back to the scheduler, so an item is never
    cut off by the walltime: it runs again on another worker. The reserve (10 %
    of the walltime, 1 to 10 minutes, at most half) covers the worker's start-up
    and the lifetime's random stagger of half the reserve either way, which keeps
    workers from all leaving at once. No ``--lifetime-restart``: a restarted
    worker would live in the same job and meet the same walltime.
    """
    reserve = min(max(0.1 * walltime_s, 60.0), 600.0, walltime_s / 2)
    return [
        "--lifetime",
        f"{int(walltime_s - reserve)}s",
        "--lifetime-stagger",
        f"{int(reserve / 2)}s",
    ]


def parse_adapt(text: str) -> tuple[int, int]:
    """``MIN:MAX`` (``--adapt``) as two worker counts."""
    try:
        low, high = (int(n) for n in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MIN:MAX, e.g. 0:20") from None
    if not 0 <= low <= high or high < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return low, high


def load_profile(path: Path) -> None:
    """Lay a site profile (a Dask config YAML) over nmbatch's defaults, under the user's config."""
    try:
        profile = yaml.safe_load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--cluster-profile {path}: cannot read it ({exc})") from exc
    if not isinstance(profile, dict):
        raise ConfigError(f"--cluster-profile {path}: expected a mapping like jobqueue.yaml")
    dask.config.update_defaults(profile)


def check_submission(script: str) -> None:
    """Fail before any item runs, in sbatch's words, when SLURM would refuse a worker job.

    ``sbatch --test-only`` checks partition, account and limits without submitting.
    Without it a refused job is only logged, and the run waits for workers forever.
    """
    with tempfile.NamedTemporaryFile("w", prefix="nmbatch-worker-", suffix=".sh") as file:
        file.write(script)
        file.flush()
        try:
            result = subprocess.run(
                ["sbatch", "--test-only", file.name], capture_output=True, text=True, timeout=120
            )
        except FileNotFoundError:
            raise ConfigError(
                "--cluster slurm: no sbatch command here; run where SLURM jobs are submitted "
                "(a login node), or see what would be submitted with --dry-run"
            ) from None
        except subprocess.TimeoutExpired:
            raise ConfigError(
                "--cluster slurm: sbatch --test-only got no answer in 120 s"
            ) from None
    if result.returncode:
        raise ConfigError(
            f"--cluster slurm: SLURM refuses the worker job (see it with --dry-run):\n"
            f"{result.stderr.strip()}"
        )


@functools.cache
def _cluster_class() -> type[Cluster]:
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError(
            "--cluster slurm needs dask-jobqueue: pip install 'nmbatch[slurm]'"
        ) from None

    class NmbatchSLURMCluster(SLURMCluster):
        """A SLURMCluster whose dashboard link names the host the dashboard listens on.

        dask-jobqueue builds the link from the scheduler's address, which is the
        node's network address even when the dashboard only listens on 127.0.0.1.
        """

        dashboard_host: str = ""

        @property
        def dashboard_link(self) -> str:
            link = super().dashboard_link
            if not link or not self.dashboard_host:
                return link
            return format_dashboard_link(
                self.dashboard_host, self.scheduler_info["services"]["dashboard"]
            )

    return NmbatchSLURMCluster


@register
class SlurmBackend(ClusterBackend):
    """Each Dask worker is one SLURM job (``jobqueue.nmbatch`` sets its size)."""

    kind = "slurm"

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        if args.cluster_profile:
            load_profile(args.cluster_profile)

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--cluster-profile",
            type=Path,
            metavar="FILE",
            help="slurm: site profile, a Dask config YAML (see cluster/slurm-profile.yaml)",
        )
        group.add_argument(
            "--adapt",
            type=parse_adapt,
            metavar="MIN:MAX",
            help="slurm: scale between MIN and MAX workers on demand (instead of --workers)",
        )
        group.add_argument("--queue", help="slurm: partition for the worker jobs (sbatch -p)")
        group.add_argument("--account", help="slurm: account charged (sbatch -A)")
        group.add_argument(
            "--walltime", metavar="TIME", help="slurm: time limit per worker job, e.g. 04:00:00"
        )
        group.add_argument("--worker-memory", metavar="SIZE", help="slurm: memory per worker job")
        group.add_argument(
            "--cores-per-worker", type=int, metavar="N", help="slurm: cores (threads) per worker"
        )

    def config(self, key: str) -> Any:
        return dask.config.get(f"jobqueue.{CONFIG_NAME}.{key}")

    def scaling(self) -> tuple[int, int]:
        """Fewest and most workers: ``--adapt MIN:MAX``, else ``--workers`` (default 1) twice."""
        if self.args.adapt:
            if self.args.workers is not None:
                raise ConfigError("--workers and --adapt: give one of them")
            return self.args.adapt
        workers = setting("cluster.workers", self.args.workers)
        if workers is None:
            workers = 1
        if workers < 1:
            raise ConfigError(f"--workers {workers}: need at least 1")
        return workers, workers

    def validate(self) -> None:
        self.scaling()

    def max_threads(self) -> int:
        cores = self.args.cores_per_worker or self.config("cores")
        return self.scaling()[1] * cores

    def walltime(self) -> str | None:
        return self.args.walltime or self.config("walltime")

    def job_options(self, preload: Sequence[str] = ()) -> dict[str, Any]:
        """SLURMCluster keywords: the flags given, the worker lifetime and preloads, the logs."""
        options: dict[str, Any] = {"config_name": CONFIG_NAME}
        flags = {
            "queue": self.args.queue,
            "account": self.args.account,
            "walltime": self.args.walltime,
            "memory": self.args.worker_memory,
            "cores": self.args.cores_per_worker,
        }
        options.update({key: value for key, value in flags.items() if value is not None})
        extra = list(self.config("worker-extra-args") or [])
        walltime = self.walltime()
        limit_s = walltime_seconds(walltime) if walltime else None
        if limit_s and "--lifetime" not in extra:
            extra += lifetime_args(limit_s)
        for module in preload:
            extra += ["--preload", module]
        options["worker_extra_args"] = extra
        options["log_directory"] = self.log_directory()
        return options

    def log_directory(self) -> str:
        """Where SLURM writes each worker job's output: the profile's, else next to the caches."""
        return self.config("log-directory") or str(Path(self.args.output) / "slurm-logs")

    def job_script(self) -> str:
        """One worker job's sbatch script (the scheduler address is a placeholder)."""
        job = _cluster_class().job_cls(
            scheduler="tcp://<scheduler-host>:<port>", name="<worker-name>", **self.job_options()
        )
        return job.job_script()

    def start(self, preload: Sequence[str] = ()) -> Cluster:
        low, high = self.scaling()
        check_submission(self.job_script())
        scheduler_options = dict(self.config("scheduler-options") or {})
        scheduler_options["dashboard_address"] = self.dashboard_address
        cluster = _cluster_class()(
            name="nmbatch", scheduler_options=scheduler_options, **self.job_options(preload)
        )
        cluster.dashboard_host = self.dashboard_address.rpartition(":")[0].strip("[]")
        if cluster.dashboard_host in ("0.0.0.0", "::"):  # every interface: name the scheduler's
            cluster.dashboard_host = ""
        # Adaptive even for a fixed count: it resubmits jobs lost to scancel, walltime or lifetime.
        # The runner keeps about two tasks per worker thread in flight, each about
        # task-duration-target long: Dask's default aim (clear the queue in 5 s) would never ask
        # for a second worker. Aiming at one task length asks for twice the workers while the
        # runner has a backlog, up to the maximum, and lets them go when it runs dry.
        cluster.scale(low)  # now, not at adapt's first tick a second later
        cluster.adapt(
            minimum=low, maximum=high, target_duration=seconds("runner.task-duration-target")
        )
        log.info("%s; worker logs in %s", self._describe(low, high), self.log_directory())
        return cluster

    def _describe(self, low: int, high: int) -> str:
        count = f"{low} to {high} workers on demand" if low < high else f"{low} worker(s)"
        walltime = self.walltime() or "the partition's default"
        return f"--cluster slurm: {count}, each one SLURM job of walltime {walltime}"

    def dry_run(self) -> str:
        low, high = self.scaling()
        return (
            f"{self._describe(low, high)} (lost jobs are resubmitted); "
            f"dashboard on {self.dashboard_address}; worker logs in {self.log_directory()}"
            f"\nsbatch script per worker (the scheduler address is known once it starts):\n\n"
            f"{self.job_script()}"
        )
