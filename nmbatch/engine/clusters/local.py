"""Workers as processes on this machine (``--cluster local``, the default)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from distributed import LocalCluster

from nmbatch.engine.clusters.core import ClusterBackend, register
from nmbatch.engine.settings import setting


@register
class LocalBackend(ClusterBackend):
    """A ``LocalCluster`` of worker processes (spawned, each with a nanny that restarts it)."""

    kind = "local"

    def n_workers(self) -> int:
        return setting("cluster.workers", self.args.workers) or os.cpu_count() or 1

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
