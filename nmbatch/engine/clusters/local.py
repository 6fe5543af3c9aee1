"""Workers as processes on this machine (``--cluster local``, the default)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from distributed import LocalCluster

from nmbatch.engine.clusters.core import ClusterBackend, register
from nmbatch.engine.errors import ConfigError
from nmbatch.engine.settings import setting


@register
class LocalBackend(ClusterBackend):
    """A ``LocalCluster`` of worker processes (spawned, each with a nanny that restarts it)."""

    kind = "local"

    def n_workers(self) -> int:
        workers = setting("cluster.workers", self.args.workers)
        return os.cpu_count() or 1 if workers is None else int(workers)

    def validate(self) -> None:
        if self.n_workers() < 1:
            raise ConfigError(f"--workers {self.n_workers()}: need at least 1 worker")

    def warnings(self) -> list[str]:
        cores = os.cpu_count() or 1
        workers = self.n_workers() * setting("cluster.threads-per-worker")
        if workers <= cores:
            return []
        return [
            f"--workers {self.n_workers()} on a machine with {cores} cores: the workers share "
            f"the cores, so items run no faster than with --workers {cores}, while every worker "
            "pays its own start-up and memory; use more workers than cores only when items "
            "wait on disk or network"
        ]

    def max_threads(self) -> int:
        return self.n_workers() * setting("cluster.threads-per-worker")

    def start(self, preload: Sequence[str] = ()) -> LocalCluster:
        return LocalCluster(
            n_workers=self.n_workers(),
            preload=list(preload),  # each nanny's worker process imports them at start
            threads_per_worker=setting("cluster.threads-per-worker"),
            processes=True,
            memory_limit=setting("cluster.memory-limit"),
            dashboard_address=self.dashboard_address,
        )

    def dry_run(self) -> str:
        return (
            f"--cluster local: would start {self.n_workers()} worker processes on this machine, "
            f"dashboard on {self.dashboard_address}"
        )
