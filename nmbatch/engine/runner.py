"""Fan a job's items out as Dask tasks and stream their outcomes into the cache.

The driver keeps a bounded number of tasks in flight, stores each outcome as it
arrives (never the whole run's results), saves in batches, and shows progress.
Very short items are grouped several to a task so that Dask's per-task cost
(about a millisecond or two) does not dominate.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, as_completed
from distributed.scheduler import KilledWorker
from tqdm import tqdm

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.errors import DataSourceError
from nmbatch.engine.job import Item, Job, Listing
from nmbatch.engine.worker import run_items

log = logging.getLogger(__name__)

WORKER_LOST_STAGE = "worker_lost"


@dataclass
class RunOptions:
    """How to select and pace items (run settings, never tracked parameters)."""

    retry_errors: bool = False
    start: int | None = None
    end: int | None = None
    limit: int | None = None
    only: Sequence[str] = ()
    progress: bool | None = None
    tasks_per_thread: int = 2
    expected_threads: int = 0
    no_worker_warning: float = 30.0
    task_duration_target: float = 0.25
    max_items_per_task: int = 500
    progress_interval: float = 15.0


@dataclass
class RunReport:
    """What a run did, for the closing summary and the exit code."""

    listed: int = 0
    selected: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    skipped_complete: int = 0
    todo: int = 0
    done: int = 0
    failed: Counter = field(default_factory=Counter)
    failed_items: list[tuple[str, str, str, str]] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())


def select_items(
    job: Job, listing: Listing, params: Mapping[str, Any], cache: AnalysisCache, options: RunOptions
) -> tuple[list[Item], RunReport]:
    """Keep the listed items this run must process."""
    items = list(listing.items)
    report = RunReport(listed=len(items))
    seen: set[str] = set()
    duplicates = {i.id for i in items if i.id in seen or seen.add(i.id)}
    if duplicates:
        raise DataSourceError(
            f"{job.name}: item ids must be unique, repeated: {sorted(duplicates)[:5]}"
        )
    items = items[options.start : options.end]
    if options.only:
        wanted = set(options.only)
        items = [i for i in items if i.id in wanted or i.label in wanted]
    report.selected = len(items)
    todo = []
    for item in items:
        output_complete = job.is_complete(item, params)
        if output_complete:
            report.skipped_complete += 1
        elif output_complete is None and cache.is_complete(item.id):
            report.skipped_done += 1
        elif cache.is_failed(item.id) and not options.retry_errors:
            report.skipped_failed += 1
        else:
            todo.append(item)
    if options.limit is not None:
        todo = todo[: options.limit]
    report.todo = len(todo)
    return todo, report


class _Progress:
    """A tqdm bar on a terminal; a log line every few seconds otherwise."""

    def __init__(self, name: str, total: int, enabled: bool | None, interval: float):
        self.name, self.total, self.interval = name, total, interval
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.count = self.failed = 0
        self.started = self.last_log = time.monotonic()
        self.bar = tqdm(
            total=total, desc=name, unit="item", file=sys.stderr, disable=not self.enabled
        )

    def update(self, n: int, failed: int) -> None:
        self.count += n
        self.failed += failed
        self.bar.update(n)
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)
        now = time.monotonic()
        if not self.enabled and now - self.last_log >= self.interval:
            self.last_log = now
            rate = self.count / max(now - self.started, 1e-9)
            eta = (self.total - self.count) / rate if rate else float("inf")
            log.info(
                "%s: %d/%d items (%d failed), %.1f items/s, about %.0f s left",
                self.name,
                self.count,
                self.total,
                self.failed,
                rate,
                eta,
            )

    def close(self) -> None:
        self.bar.close()


def _watch_for_workers(client: Client, stop: threading.Event, interval: float) -> None:
    """Warn while no worker is connected (jobs pending in a queue, or failing to start)."""
    waited = 0.0
    while not stop.wait(interval):
        waited = waited + interval if not client.nthreads() else 0.0
        if waited:
            log.warning(
                "no Dask worker connected for %.0f s: are the worker jobs pending or failing? "
                "(on SLURM: squeue, and the worker logs)",
                waited,
            )


def _store(cache: AnalysisCache, outcome: dict[str, Any], report: RunReport) -> bool:
    common = {
        "label": outcome.get("label"),
        "worker": outcome.get("worker"),
        "flags": outcome.get("flags"),
    }
    common["duration_s"] = outcome.get("duration_s")
    if outcome["status"] == "done":
        cache.add(outcome["id"], tables=outcome["tables"], arrays=outcome.get("arrays"), **common)
        report.done += 1
        return False
    cache.add_error(
        outcome["id"],
        outcome["error_message"],
        stage=outcome["stage"],
        error_type=outcome["error_type"],
        traceback=outcome.get("traceback"),
        **common,
    )
    report.failed[(outcome["stage"], outcome["error_type"])] += 1
    report.failed_items.append(
        (outcome["id"], outcome.get("label") or "", outcome["stage"], outcome["error_message"])
    )
    return True


def _lost(item: Item, exc: BaseException) -> dict[str, Any]:
    return {
        "id": item.id,
        "label": item.label,
        "status": "failed",
        "stage": WORKER_LOST_STAGE,
        "error_type": type(exc).__name__,
        "error_message": (
            "the worker process running this item died each time it was tried "
            f"(killed, out of memory, or crashed): {exc}"
        ),
        "worker": str(getattr(exc, "last_worker", "") or ""),
        "flags": {},
    }


def execute(
    client: Client,
    job: Job,
    params: Mapping[str, Any],
    cache: AnalysisCache,
    listing: Listing,
    todo: Sequence[Item],
    report: RunReport,
    options: RunOptions,
) -> RunReport:
    """Run ``todo`` on the cluster behind ``client``, storing outcomes as they finish.

    On Ctrl-C (KeyboardInterrupt) the tasks in flight are cancelled, what finished
    is saved, and the report says the run was interrupted.
    """
    started = time.monotonic()
    schemas = job.table_schemas(params)
    array_path = cache.prepare_arrays()
    queue: deque[Item] = deque(todo)
    in_flight: dict[Any, list[Item]] = {}
    results = as_completed()
    per_item = 0.0
    chunk = 1
    progress = _Progress(job.name, len(todo), options.progress, options.progress_interval)
    stop_watch = threading.Event()
    threading.Thread(
        target=_watch_for_workers, args=(client, stop_watch, options.no_worker_warning), daemon=True
    ).start()

    threads = {"count": 0, "checked": -1.0}

    def capacity() -> int:
        """Tasks to keep in flight; the worker count is asked at most once a second."""
        now = time.monotonic()
        if now - threads["checked"] >= 1.0:
            threads.update(count=sum(client.nthreads().values()), checked=now)
        expected = max(threads["count"], options.expected_threads)
        return max(2, expected * options.tasks_per_thread)

    def submit(items: list[Item]) -> None:
        key = f"{job.name}-{items[0].id}-{uuid.uuid4().hex[:8]}"
        future = client.submit(
            run_items, job, items, params, schemas, cache.id_column, array_path, key=key, pure=False
        )
        in_flight[future] = items
        results.add(future)

    def fill() -> None:
        limit = capacity()
        while queue and len(in_flight) < limit:
            submit([queue.popleft() for _ in range(min(chunk, len(queue)))])

    try:
        fill()
        for future in results:
            items = in_flight.pop(future)
            try:
                outcomes = future.result()
            except KilledWorker as exc:
                if len(items) > 1:  # find which item kills workers: retry them one per task
                    for item in items:
                        submit([item])
                    continue
                outcomes = [_lost(items[0], exc)]
            failed = sum(_store(cache, o, report) for o in outcomes)
            durations = [o["duration_s"] for o in outcomes if o.get("duration_s")]
            if durations:
                mean = sum(durations) / len(durations)
                per_item = mean if per_item == 0 else 0.8 * per_item + 0.2 * mean
                wanted = int(options.task_duration_target / max(per_item, 1e-6))
                chunk = max(1, min(options.max_items_per_task, wanted))
            if cache.save_if_needed():
                job.on_saved(cache, listing)
            progress.update(len(outcomes), failed)
            fill()
    except KeyboardInterrupt:
        report.interrupted = True
        client.cancel(list(in_flight))
    finally:
        stop_watch.set()
        progress.close()
        cache.save()
        job.on_saved(cache, listing)
        report.elapsed_s = time.monotonic() - started
    if not report.interrupted:
        cache.compact()
    return report
