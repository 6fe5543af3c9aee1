"""Fixtures shared by the IBL tests: one small generated demo ONE cache per test session.

A test module uses them with ``pytest_plugins = ["ibl_fixtures"]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from one.api import One

from nmbatch.engine.config import get_analysis_config
from nmbatch.ibl.demo import MIN_PLANTED_SESSIONS, DemoInfo, make_demo_one_cache

# The smallest demo with every planted case plus one more ordinary session; 5 minutes of
# signal give three 120 s windows at the configured 60 s step.
DEMO_SESSIONS = MIN_PLANTED_SESSIONS + 1
DEMO_DURATION_S = 300.0
# The seed's sliding-window metrics, in its order (the job's default configuration)
SEED_SLIDING = [
    "n_unique_samples",
    "n_edges",
    "median_absolute_deviance",
    "percentile_distance",
    "percentile_asymmetry",
    "n_outliers",
    "n_expmax_violations",
    "expmax_violation",
    "ar_score",
]


@pytest.fixture(scope="session")
def demo_info(tmp_path_factory: pytest.TempPathFactory) -> DemoInfo:
    """A demo ONE cache with all planted cases, generated once per test session."""
    root: Path = tmp_path_factory.mktemp("ibl") / "demo_one_cache"
    return make_demo_one_cache(root, n_sessions=DEMO_SESSIONS, duration_s=DEMO_DURATION_S)


@pytest.fixture(scope="session")
def demo_one(demo_info: DemoInfo) -> One:
    """ONE in local mode on the demo cache."""
    return One(cache_dir=demo_info.root, mode="local")


@pytest.fixture(scope="session")
def photometry_params() -> dict:
    """The shipped photometry QC parameters (jobs/photometry.yaml over general.yaml)."""
    return get_analysis_config("photometry")
