"""The cache's on-disk format as data: names, schemas, spans. Pure functions, no I/O.

Layout of ``<output>/<analysis>/`` (format 2)::

    manifest.json                         analysis, created, updated, config, provenance, counts
    configs/<hash>.json                   every parameter set and provenance a record was made with
    items/<first>-<last>.<crc>.parquet    item records: one per attempt (done, or failed + error)
    results/<table>/<first>-<last>.<crc>.parquet    result rows, one explicit schema per table
    arrays.zarr/<item id>/<name>          arrays, one zarr group per item
    staging/<task>/                       what a worker made durable, not yet committed
    runs/<start>/run.json                 one folder per run: its counts, decision, Dask's report
    corrupt/                              damaged files moved aside, never read again
    .lock                                 held by the run that writes

``items`` and each ``results/<table>`` are links to hidden versioned folders
(``.items.v000003``): a compaction builds the next version beside the live one and
swaps the link in one step, so a reader (nmbatch, pandas, pyarrow, duckdb) never sees a
row twice. Each part's name holds the span of commits it covers and the CRC-32 of its
bytes, which the writer checks whenever it opens the cache.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import pyarrow as pa

FORMAT = "nmbatch-cache"
FORMAT_VERSION = 2
MANIFEST_KEY = "manifest.json"
CONFIGS_PREFIX = "configs"
ITEMS_PREFIX = "items"
RESULTS_PREFIX = "results"
ARRAYS_KEY = "arrays.zarr"
STAGING_PREFIX = "staging"
RUNS_PREFIX = "runs"
CORRUPT_PREFIX = "corrupt"
LOCK_KEY = ".lock"
DONE, FAILED = "done", "failed"

# Inside one staged task folder, as a worker leaves it.
STAGED_RECORD = "record"  # record.<crc>.parquet, written last: the task's outcome is durable
STAGED_RESULTS = "results"  # results/<table>.<crc>.parquet
STAGED_ARRAYS = "arrays"  # arrays/<item id>/..., a zarr hierarchy
STARTED_PREFIX = "started-"  # started-<uuid>: one per try that began running the task


def items_schema(id_column: str, label_column: str) -> pa.Schema:
    """The one schema of item records: state, error record and provenance in one row."""
    return pa.schema(
        [
            (id_column, pa.string()),
            (label_column, pa.string()),
            ("status", pa.string()),
            ("stage", pa.string()),
            ("error_type", pa.string()),
            ("error_message", pa.string()),
            ("traceback", pa.string()),
            ("worker", pa.string()),
            ("attempt", pa.int32()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("duration_s", pa.float64()),
            ("flags", pa.string()),  # JSON
            ("fingerprint", pa.string()),
            ("config_hash", pa.string()),
            ("provenance_hash", pa.string()),
            ("nmbatch_version", pa.string()),
            ("code_version", pa.string()),
            ("libraries", pa.string()),  # JSON {distribution: version}
            ("files", pa.string()),  # JSON {path under the cache: [size, crc32]} of its arrays
            ("commit", pa.int64()),  # filled from the part's span when a segment is merged
        ]
    )


def result_schema(schema: pa.Schema, id_column: str) -> pa.Schema:
    """A result table's declared schema with the id column first."""
    if id_column in schema.names:
        return schema
    return pa.schema([pa.field(id_column, pa.string()), *schema])


def array_group(item_id: str) -> str:
    """The zarr group of an item's arrays: its id, with ``/`` (a path-like id) made flat."""
    return str(item_id).replace("/", "%2F")


def crc32(data: bytes) -> str:
    """The checksum every committed part carries in its name (8 hex digits)."""
    return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"


@dataclass(frozen=True, order=True)
class Span:
    """The commits a part covers, ``first`` to ``last`` inclusive."""

    first: int
    last: int

    def part_name(self, checksum: str) -> str:
        return f"{self.first:010d}-{self.last:010d}.{checksum}.parquet"

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, commit: int) -> bool:
        return self.first <= commit <= self.last


@dataclass(frozen=True)
class Part:
    """A committed parquet part: its key, span and recorded checksum."""

    key: str
    span: Span
    checksum: str

    @classmethod
    def parse(cls, key: str) -> Part | None:
        """``items/0000000001-0000000008.1a2b3c4d.parquet`` -> Part; None for other names."""
        name = key.rsplit("/", 1)[-1]
        stem, dot, ext = name.rpartition(".")
        if not dot or ext != "parquet":
            return None
        span_text, dot, checksum = stem.partition(".")
        first, sep, last = span_text.partition("-")
        if not (dot and sep and first.isdigit() and last.isdigit() and len(checksum) == 8):
            return None
        return cls(key, Span(int(first), int(last)), checksum)


def staged_file(prefix: str, checksum: str) -> str:
    """``record.<crc>.parquet`` or ``results/<table>.<crc>.parquet`` inside a staged task."""
    return f"{prefix}.{checksum}.parquet"


def parse_staged(name: str) -> tuple[str, str] | None:
    """``qc.1a2b3c4d.parquet`` -> ('qc', '1a2b3c4d')."""
    stem, dot, ext = name.rpartition(".")
    base, dot2, checksum = stem.rpartition(".")
    if not (dot and dot2 and ext == "parquet" and len(checksum) == 8):
        return None
    return base, checksum


def committed_task_name(commit: int, task: str) -> str:
    """A staged task folder renamed with its commit number once the driver starts committing."""
    return f"{commit:010d}@{task}"


def parse_task_name(name: str) -> tuple[int | None, str]:
    """``0000000012@task`` -> (12, 'task'); ``task`` -> (None, 'task')."""
    number, sep, task = name.partition("@")
    if sep and number.isdigit():
        return int(number), task
    return None, name


def tier(span: Span, factor: int) -> int:
    """Size class of a span: 0 for 1..factor-1 commits, 1 up to factor**2-1, ..."""
    level, size = 0, span.size
    while size >= factor:
        size //= factor
        level += 1
    return level


def merge_plan(spans: list[Span], factor: int) -> list[list[Span]]:
    """Runs of adjacent spans to merge so that no size class holds ``factor`` spans in a row.

    Like a counter in base ``factor``: ``factor`` adjacent spans of one class become one
    span of the next, so a table keeps at most ``factor - 1`` parts per class, about
    ``(factor - 1) * log_factor(commits)`` parts whatever its size, and each row is
    rewritten about ``log_factor(commits)`` times in all.
    """
    stack: list[tuple[Span, list[Span]]] = []
    for span in sorted(spans):
        stack.append((span, [span]))
        while len(stack) >= factor and len({tier(s, factor) for s, _ in stack[-factor:]}) == 1:
            tail = stack[-factor:]
            del stack[-factor:]
            merged = Span(tail[0][0].first, tail[-1][0].last)
            stack.append((merged, [part for _, group in tail for part in group]))
    return [group for _, group in stack if len(group) > 1]
