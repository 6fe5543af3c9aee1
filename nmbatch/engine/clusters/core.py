"""Where workers come from: one small backend class per cluster kind.

A backend turns run settings (flags over the ``nmbatch.cluster`` Dask config)
into a running ``distributed`` cluster. :func:`connect` picks the backend from
``--cluster``, or attaches to an existing scheduler given by ``--scheduler``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

import dask.config
from distributed import Client, Worker, WorkerPlugin
from distributed.deploy import Cluster

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.settings import setting


class ClusterBackend(ABC):
    """Base class of the cluster kinds (``--cluster <kind>``)."""

    kind: ClassVar[str]

    def __init__(self, args: argparse.Namespace):
        self.args = args

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add the options only this kind understands."""

    @property
    def dashboard_address(self) -> str:
        return setting("cluster.dashboard-address", self.args.dashboard_address)

    def max_threads(self) -> int | None:
        """Worker threads the cluster may grow to (None: unknown). The runner keeps enough
        tasks in flight to occupy them, so adaptive scaling sees the backlog."""
        return None

    @abstractmethod
    def start(self, preload: Sequence[str] = ()) -> Cluster:
        """Start the cluster with the workers asked for; each imports ``preload`` as it starts."""

    def dry_run(self) -> str:
        """What would be started or submitted, without doing it."""
        return (
            f"--cluster {self.kind}: nothing is submitted to a queue; workers start on this machine"
        )


BACKENDS: dict[str, type[ClusterBackend]] = {}


def register(backend: type[ClusterBackend]) -> type[ClusterBackend]:
    """Make a backend available as ``--cluster <backend.kind>``."""
    BACKENDS[backend.kind] = backend
    return backend


def backend_for(args: argparse.Namespace) -> ClusterBackend:
    """The backend ``--cluster`` (or the ``nmbatch.cluster.kind`` setting) names."""
    kind = setting("cluster.kind", args.cluster)
    if kind not in BACKENDS:
        raise ConfigError(
            f"--cluster {kind}: unknown cluster kind (known: {', '.join(sorted(BACKENDS))})"
        )
    return BACKENDS[kind](args)


class PreloadModules(WorkerPlugin):
    """Import modules on every worker of a running scheduler, those there and those to come."""

    name = "nmbatch-preload"

    def __init__(self, modules: Sequence[str]):
        self.modules = tuple(modules)

    def setup(self, worker: Worker) -> None:
        for module in self.modules:
            importlib.import_module(module)


@contextlib.contextmanager
def connect(args: argparse.Namespace, preload: Sequence[str] = ()) -> Iterator[Client]:
    """A client on ``--scheduler ADDRESS``, or on a new cluster of the chosen kind.

    Workers import the modules in ``preload`` (a job's ``worker_preload``) as they start, so
    slow imports overlap the cluster's start-up instead of delaying the first items.
    """
    failures = setting("runner.allowed-failures")
    with dask.config.set({"distributed.scheduler.allowed-failures": failures}):
        if args.scheduler:
            with Client(args.scheduler) as client:
                if preload:  # workers of someone else's cluster: a plugin imports on each
                    client.register_plugin(PreloadModules(preload))
                yield client
            return
        cluster = backend_for(args).start(preload)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
