"""Where workers come from: one small backend class per cluster kind.

A backend turns run settings (flags over the ``nmbatch.cluster`` Dask config)
into a running ``distributed`` cluster. :func:`connect` picks the backend from
``--cluster``, or attaches to an existing scheduler given by ``--scheduler``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

import dask.config
from distributed import Client, Worker, WorkerPlugin
from distributed.deploy import Cluster
from distributed.utils import format_dashboard_link

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

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot work (before anything starts)."""

    def warnings(self) -> list[str]:
        """Things a person should know before the cluster starts (e.g. more workers than cores)."""
        return []

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


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dashboard_link(client: Client, backend: ClusterBackend | None) -> tuple[str, str | None]:
    """The dashboard's link as it really listens, and a warning when that is not the loopback.

    ``--dashboard-address :8787`` (or ``0.0.0.0:8787``) listens on every interface: anyone
    who can reach this machine sees the run. The link then names this host.
    """
    link = client.dashboard_link
    if backend is None:
        return link, None
    host = backend.dashboard_address.rpartition(":")[0].strip("[]")
    if host in LOOPBACK:
        return link, None
    port = client.scheduler_info().get("services", {}).get("dashboard")
    shown = host if host not in ("", "0.0.0.0", "::") else socket.gethostname()
    link = format_dashboard_link(shown, port) if port else link
    where = "every network interface" if shown != host else host
    return link, (
        f"the dashboard listens on {where} (port {port}): anyone who can reach this machine "
        "can watch the run; use --dashboard-address 127.0.0.1:PORT and an SSH tunnel unless "
        "you mean it"
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


WORKER_SETUP = "nmbatch.engine.worker_setup"
CLOSE_TIMEOUT = 10  # seconds; a second Ctrl-C stops at once anyway


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

    Workers nmbatch starts import :mod:`nmbatch.engine.worker_setup` and ``preload`` (the
    job's slow imports) as they start, so slow imports overlap the cluster's start-up instead
    of delaying the first items; workers of an attached scheduler import ``preload`` through
    a plugin.
    """
    failures = setting("runner.allowed-failures")
    with dask.config.set({"distributed.scheduler.allowed-failures": failures}):
        if args.scheduler:
            with Client(args.scheduler) as client:
                if preload:  # workers of someone else's cluster: a plugin imports on each
                    client.register_plugin(PreloadModules(preload))
                yield client
            return
        cluster = backend_for(args).start([WORKER_SETUP, *preload])
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close(timeout=CLOSE_TIMEOUT)
        finally:
            cluster.close(timeout=CLOSE_TIMEOUT)
