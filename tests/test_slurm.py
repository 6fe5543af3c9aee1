"""``--cluster slurm``: the sbatch script offline, and whole runs on a real single-node SLURM.

The tests marked ``slurm`` need a running SLURM: the one ``SLURM_CONF`` (or
/etc/slurm/slurm.conf) names, or, with ``NMBATCH_TEST_SLURM=start`` and root, the
throw-away one that ``cluster/local-slurm/start.sh`` starts for the session and
``stop.sh`` removes. Without either they are skipped, saying why.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import job_command, n_done_on_disk, wait_for
from test_durability import durable_now

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.cli import build_parser
from nmbatch.engine.clusters import connect
from nmbatch.engine.clusters.slurm import lifetime_args, parse_adapt, walltime_seconds
from nmbatch.engine.errors import ConfigError
from nmbatch.synthetic.job import SyntheticJob, burn_cpu

REPO = Path(__file__).resolve().parents[1]
LOCAL_SLURM = REPO / "cluster" / "local-slurm"
JOB = "nmbatch.synthetic"
# Small worker jobs: two of them fit the 2-core test node next to nothing else.
SMALL = ("--worker-memory", "1GiB", "--walltime", "00:05:00")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


# --- offline: no SLURM needed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("walltime", "seconds"),
    [
        ("30", 1800),
        ("30:15", 1815),
        ("04:00:00", 14400),
        ("1-00", 86400),
        ("2-01:30", 178200),
        ("1-00:00:10", 86410),
        ("INFINITE", None),
    ],
)
def test_slurm_time_limits_are_read_in_every_format(walltime, seconds):
    assert walltime_seconds(walltime) == seconds


@pytest.mark.parametrize("walltime", ["1:2:3:4", "soon", "", "1-2:3:4:5"])
def test_a_bad_time_limit_is_a_config_error(walltime):
    with pytest.raises(ConfigError, match="not a SLURM time limit"):
        walltime_seconds(walltime)


@pytest.mark.parametrize("walltime_s", [60, 300, 1800, 3600, 4 * 3600, 48 * 3600])
def test_workers_retire_before_the_walltime_with_staggered_lifetimes(walltime_s):
    flags = lifetime_args(walltime_s)
    lifetime = int(flags[flags.index("--lifetime") + 1].rstrip("s"))
    stagger = int(flags[flags.index("--lifetime-stagger") + 1].rstrip("s"))
    assert "--lifetime-restart" not in flags, "a restart stays in the same job and its walltime"
    assert stagger > 0
    assert lifetime + stagger <= walltime_s - min(30, walltime_s / 4), "leaves time to retire"
    assert lifetime - stagger >= walltime_s / 4


def test_adapt_bounds_are_checked():
    assert parse_adapt("0:8") == (0, 8)
    for bad in ("8", "3:1", "0:0", "a:b", "-1:2"):
        with pytest.raises(argparse.ArgumentTypeError, match="MIN"):
            parse_adapt(bad)


def test_dry_run_prints_the_sbatch_script_without_slurm(tmp_path):
    """Profile < environment < flags; the shipped profile loads; no SLURM command is run."""
    profile = tmp_path / "site.yaml"
    profile.write_text(
        "jobqueue:\n  nmbatch:\n    queue: profileq\n    account: profileacct\n"
        "    memory: 2GiB\n    cores: 2\n    job-extra-directives: [--qos=low]\n"
    )
    offline = {"PATH": str(Path(sys.executable).parent), "SLURM_CONF": "/nonexistent"}
    env = {**offline, "DASK_JOBQUEUE__NMBATCH__ACCOUNT": "envacct"}
    args = job_command(JOB, "--output", "out", "--cluster", "slurm", "--dry-run", "--workers", "3")
    out = run(
        [*args, "--cluster-profile", str(profile), "--queue", "flagq", "--walltime", "02:00:00"],
        tmp_path,
        env,
    )
    assert out.returncode == 0, out.stderr
    script = out.stdout
    for line in (
        "#SBATCH -p flagq",  # flag over profile
        "#SBATCH -A envacct",  # environment over profile
        "#SBATCH --mem=2G",  # profile over nmbatch's default
        "#SBATCH --cpus-per-task=2",
        "#SBATCH -t 02:00:00",
        "#SBATCH --qos=low",
        f"#SBATCH -o {tmp_path}/out/slurm-logs/nmbatch-worker-%J.out",
    ):
        assert line in script.splitlines(), f"{line!r} missing from:\n{script}"
    assert "--nthreads 2 --memory-limit 2.00GiB" in script
    assert "--lifetime 6600s --lifetime-stagger 300s" in script
    assert "3 worker(s)" in script and "dashboard on 127.0.0.1:8787" in script

    shipped = run(
        [*args, "--cluster-profile", str(REPO / "cluster" / "slurm-profile.yaml")], tmp_path, env
    )
    assert shipped.returncode == 0, shipped.stderr
    assert "#SBATCH -p compute" in shipped.stdout and "module load" in shipped.stdout

    both = run([*args, "--adapt", "0:4"], tmp_path, offline)
    assert both.returncode == 2 and "--workers and --adapt" in both.stderr
    missing = run([*args, "--cluster-profile", str(tmp_path / "nope.yaml")], tmp_path, offline)
    assert missing.returncode == 2 and "nope.yaml: cannot read it" in missing.stderr

    no_sbatch = run(
        job_command(JOB, "--output", "out", "--cluster", "slurm", "--items", "2"), tmp_path, offline
    )
    assert no_sbatch.returncode == 2 and "no sbatch command here" in no_sbatch.stderr


# --- on a real SLURM --------------------------------------------------------------------------


def slurm_missing() -> str | None:
    """Why no SLURM can take jobs here, or None when one can."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        return "sinfo is not installed"
    if out.returncode:
        last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        return f"sinfo failed ({last})"
    if not {"idle", "mixed", "allocated"} & set(out.stdout.split()):
        return f"no node is up (sinfo: {' '.join(out.stdout.split()) or 'no nodes'})"
    return None


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    started = os.environ.get("NMBATCH_TEST_SLURM") == "start"
    if started:
        up = subprocess.run([LOCAL_SLURM / "start.sh"], capture_output=True, text=True, timeout=300)
        if up.returncode:
            pytest.fail(f"NMBATCH_TEST_SLURM=start: start.sh failed:\n{up.stderr}")
        os.environ["SLURM_CONF"] = up.stdout.splitlines()[-1].split("=", 1)[1]
    reason = slurm_missing()
    if reason:
        pytest.skip(
            f"no SLURM to run --cluster slurm on: {reason}. As root, start the throw-away one "
            "(cluster/local-slurm/start.sh, export the SLURM_CONF it prints) or set "
            "NMBATCH_TEST_SLURM=start"
        )
    try:
        yield
    finally:
        if started:
            subprocess.run([LOCAL_SLURM / "stop.sh"], check=True, timeout=120)


def queued_jobs() -> list[str]:
    return subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout.split()


@pytest.fixture
def empty_queue(slurm) -> Iterator[None]:
    """Each test starts on an empty queue and leaves no job running behind its driver."""
    wait_for(lambda: not queued_jobs(), "jobs of an earlier test to end")
    yield
    wait_for(lambda: not queued_jobs(), "every worker job to end after its driver closed")


def worker_logs(out: Path) -> dict[str, str]:
    """Each worker job's stderr (where dask worker logs), by SLURM job id."""
    return {
        re.search(r"-(\d+)\.err$", p.name).group(1): p.read_text()
        for p in (out / "slurm-logs").glob("nmbatch-worker-*.err")
    }


def check_every_item_once(cache_dir: Path, n_items: int) -> pd.DataFrame:
    """All items done, none twice, each with its known value; returns the item states."""
    cache = AnalysisCache.open(cache_dir)
    values = cache.get_results("values").sort_values("index")
    assert cache.n_done == n_items and cache.n_failed == 0
    assert list(values["item_id"]) == [f"item-{i:06d}" for i in range(n_items)]
    assert values["value"].tolist() == pytest.approx([math.sqrt(i) for i in range(n_items)])
    return cache.item_states()


@pytest.mark.slurm
def test_a_job_runs_on_slurm_workers(tmp_path, empty_queue):
    out = run(
        job_command(
            JOB, "--output", "out", "--cluster", "slurm", "--workers", "2", *SMALL, "--no-progress"
        )
        + ["--items", "40", "--set", "work_ms=200", "--dashboard-address", "127.0.0.1:0"],
        tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    link = re.search(r"Dask dashboard: (\S+)", out.stdout).group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9]\d*/status", link), link
    states = check_every_item_once(tmp_path / "out" / "synthetic", 40)

    logs = worker_logs(tmp_path / "out")
    assert len(logs) == 2, "two workers, each its own SLURM job"
    addresses = {re.search(r"Start worker at:\s+(\S+)", log).group(1) for log in logs.values()}
    assert len(addresses) == 2
    assert set(states["worker"]) <= addresses, "items ran on the SLURM jobs' workers"


@pytest.mark.slurm
def test_a_worker_job_slurm_refuses_stops_the_run_before_any_item(tmp_path, empty_queue):
    out = run(
        job_command(JOB, "--output", "out", "--cluster", "slurm", "--queue", "nosuchpartition"),
        tmp_path,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "SLURM refuses the worker job" in out.stderr and "invalid partition" in out.stderr


@pytest.mark.slurm
def test_a_cancelled_worker_job_loses_no_item(tmp_path, empty_queue):
    cache_dir = tmp_path / "out" / "synthetic"
    driver = subprocess.Popen(
        job_command(
            JOB, "--output", "out", "--cluster", "slurm", "--workers", "2", *SMALL, "--no-progress"
        )
        + ["--items", "60", "--set", "work_ms=250", "--batch-size", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: n_done_on_disk(cache_dir) >= 10, "10 items done")
        jobs = queued_jobs()
        assert len(jobs) == 2
        subprocess.run(["scancel", jobs[0]], check=True)
        output, _ = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == 0, output
    assert "CANCELLED" in worker_logs(tmp_path / "out")[jobs[0]]
    check_every_item_once(cache_dir, 60)


@pytest.mark.slurm
def test_a_killed_driver_loses_nothing_its_slurm_workers_finished(tmp_path, empty_queue):
    """Workers stage on the shared file system; SIGKILL of the driver loses no finished item."""
    cache_dir = tmp_path / "out" / "synthetic"
    args = [*SMALL, "--no-progress", "--items", "60", "--set", "work_ms=250"]
    driver = subprocess.Popen(
        job_command(JOB, "--output", "out", "--cluster", "slurm", "--workers", "2", *args),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(lambda: n_done_on_disk(cache_dir) >= 8, "8 items committed", driver)
    finally:
        os.killpg(driver.pid, 9)
        driver.wait()
    for job in queued_jobs():  # the workers of a dead driver: gone within their death-timeout
        subprocess.run(["scancel", job], check=False)
    wait_for(lambda: not queued_jobs(), "the dead driver's worker jobs to end")
    durable = durable_now(cache_dir)
    assert len(durable) >= 8
    resumed = run(
        job_command(JOB, "--output", "out", "--cluster", "slurm", "--workers", "2", *args),
        tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    skipped = next(line for line in resumed.stdout.splitlines() if "skipped, done before" in line)
    assert int(skipped.split()[-1]) >= len(durable), "what the workers finished was kept"
    check_every_item_once(cache_dir, 60)


@pytest.mark.slurm
def test_workers_retiring_at_their_lifetime_are_replaced(tmp_path, empty_queue):
    """Items outlast the workers' lifetimes: each retires gracefully and a new job takes over.

    Two workers living at most 7 s cannot do the 18 s of work: replacements must.
    """
    quick = {
        "DASK_JOBQUEUE__NMBATCH__WORKER_EXTRA_ARGS": '["--lifetime", "6s", "--lifetime-stagger", '
        '"1s"]',
        "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s",
    }
    out = run(
        job_command(
            JOB, "--output", "out", "--cluster", "slurm", "--workers", "2", *SMALL, "--no-progress"
        )
        + ["--items", "60", "--set", "work_ms=300"],
        tmp_path,
        quick,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    check_every_item_once(tmp_path / "out" / "synthetic", 60)
    logs = worker_logs(tmp_path / "out")
    assert len(logs) >= 3, "retired workers were replaced by new jobs"
    assert any("worker-lifetime-reached" in log for log in logs.values())


@pytest.mark.slurm
def test_adaptive_scaling_goes_up_and_back_to_zero(tmp_path, empty_queue):
    """Also: the dashboard listens on 127.0.0.1 only, the scheduler on every interface."""
    args = build_parser(SyntheticJob).parse_args(
        ["--output", str(tmp_path), "--cluster", "slurm", "--adapt", "0:2", *SMALL]
        + ["--dashboard-address", "127.0.0.1:0"]
    )

    def n_workers() -> int:
        return len(client.nthreads())

    with connect(args) as client:
        assert n_workers() == 0 and not queued_jobs(), "no work, no jobs"
        futures = client.map(burn_cpu, [1.0] * 16, pure=False)
        wait_for(lambda: n_workers() == 2, "adapt to start 2 workers")
        assert len(queued_jobs()) == 2

        dashboard_port = client.scheduler_info()["services"]["dashboard"]
        scheduler_port = int(client.scheduler.address.rsplit(":", 1)[1])
        listening = [
            c.laddr
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        assert {a.ip for a in listening if a.port == dashboard_port} == {"127.0.0.1"}
        assert {a.ip for a in listening if a.port == scheduler_port} <= {"0.0.0.0", "::"}
        assert client.dashboard_link == f"http://127.0.0.1:{dashboard_port}/status"

        client.gather(futures)
        del futures  # results held on a worker would keep it from retiring
        wait_for(lambda: n_workers() == 0, "adapt to retire idle workers")
        wait_for(lambda: not queued_jobs(), "the idle workers' jobs to end")


@pytest.mark.slurm
def test_the_driver_runs_as_a_slurm_job(tmp_path, empty_queue):
    """cluster/run-driver.sbatch: the driver on a compute node submits its own workers."""
    venv = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    submitted = run(
        ["sbatch", "--parsable", "-c", "1", "--mem=2G", str(REPO / "cluster" / "run-driver.sbatch")]
        + [JOB, "--output", "out", "--workers", "1", *SMALL, "--items", "20"],
        tmp_path,
        venv,
    )
    assert submitted.returncode == 0, submitted.stderr
    driver_job = submitted.stdout.strip().split(";")[0]
    wait_for(lambda: driver_job not in queued_jobs(), "the driver job to finish", timeout=180)
    log = (tmp_path / f"nmbatch-driver-{driver_job}.log").read_text()
    assert re.search(r"done now\s+20\n", log), log
    assert len(worker_logs(tmp_path / "out")) == 1
    check_every_item_once(tmp_path / "out" / "synthetic", 20)
