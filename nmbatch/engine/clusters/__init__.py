"""Cluster backends; importing this package registers every kind."""

import nmbatch.engine.clusters.slurm  # noqa: F401  (registers --cluster slurm)
from nmbatch.engine.clusters import local  # noqa: F401  (registers --cluster local)
from nmbatch.engine.clusters.core import (
    BACKENDS,
    ClusterBackend,
    backend_for,
    connect,
    dashboard_link,
    register,
)

__all__ = ["BACKENDS", "ClusterBackend", "backend_for", "connect", "dashboard_link", "register"]
