"""The driver's view of every item's latest state, built from the committed records.

Records are history (every attempt is kept); the index says, per item, what
counts now: the latest record's status, the commit of its latest *done* record
(whose result rows readers keep), how often it failed, and what made its done
record (parameters, provenance, input fingerprint).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from nmbatch.engine.layout import DONE, FAILED
from nmbatch.engine.outcome import ItemRecord, Stamp

INDEX_COLUMNS = ("status", "config_hash", "provenance_hash", "fingerprint", "commit")


class DoneState(NamedTuple):
    """What made an item's latest done record."""

    commit: int
    config_hash: str | None
    provenance_hash: str | None
    fingerprint: str | None


@dataclass
class ItemIndex:
    """Latest status, done record and failure count per item id."""

    status: dict[str, str] = field(default_factory=dict)
    # id -> DoneState's fields as a plain tuple: a cache holds one per done item, and
    # making 100 000 named tuples at every open costs more than the rest of the index
    done: dict[str, tuple] = field(default_factory=dict)
    failures: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    invalid: set[str] = field(default_factory=set)

    @classmethod
    def from_records(cls, records: pd.DataFrame, id_column: str) -> ItemIndex:
        """Build from the records in commit order (columns: the id and INDEX_COLUMNS)."""
        index = cls()
        if not len(records):
            return index
        ids = records[id_column]
        latest = records.drop_duplicates(id_column, keep="last")
        index.status = dict(zip(latest[id_column].tolist(), latest["status"].tolist(), strict=True))
        done = records[records["status"] == DONE].drop_duplicates(id_column, keep="last")
        states = zip(
            done["commit"].astype("int64").tolist(),
            *(done[c].tolist() for c in ("config_hash", "provenance_hash", "fingerprint")),
            strict=True,
        )
        index.done = dict(zip(done[id_column].tolist(), states, strict=True))
        index.failures = Counter(ids[records["status"] == FAILED].tolist())
        index.counts = Counter(index.status.values())
        return index

    def apply(self, records: Iterable[ItemRecord], commit: int) -> None:
        """Take in the records of one new commit."""
        for record in records:
            previous = self.status.get(record.item_id)
            if previous is not None:
                self.counts[previous] -= 1
            self.status[record.item_id] = record.status
            self.counts[record.status] += 1
            self.invalid.discard(record.item_id)
            if record.status == DONE:
                self.done[record.item_id] = (
                    commit,
                    record.stamp.config_hash,
                    record.stamp.provenance_hash or None,
                    record.fingerprint or None,
                )
            else:
                self.failures[record.item_id] += 1

    def invalidate(self, item_id: str) -> None:
        """Treat a done item as not done (its arrays are damaged): it runs again."""
        if self.status.get(item_id) == DONE:
            self.invalid.add(item_id)

    def is_done(self, item_id: str) -> bool:
        return self.status.get(item_id) == DONE and item_id not in self.invalid

    def is_failed(self, item_id: str) -> bool:
        return self.status.get(item_id) == FAILED

    def done_commit(self, item_id: str) -> int | None:
        state = self.done.get(item_id)
        return state[0] if state else None

    def compare(self, item_id: str, stamp: Stamp, fingerprint: str) -> str:
        """The item against this run: ``new``, ``failed``, or done and then what differs
        from its done record: ``parameters``, ``provenance`` (when this run knows its own),
        ``input`` (when the item has a fingerprint), else ``current``.

        One call per listed item: a resume over 100 000 items makes this the hot path.
        """
        if not self.is_done(item_id):
            return "failed" if self.is_failed(item_id) else "new"
        _, config_hash, provenance_hash, done_fingerprint = self.done[item_id]
        if config_hash != stamp.config_hash:
            return "parameters"
        if stamp.provenance_hash and provenance_hash != stamp.provenance_hash:
            return "provenance"
        if fingerprint and done_fingerprint != fingerprint:
            return "input"
        return "current"

    def done_states(self) -> Iterator[DoneState]:
        return (DoneState(*state) for state in self.done.values())

    @property
    def n_done(self) -> int:
        return self.counts[DONE] - len(self.invalid)

    @property
    def n_failed(self) -> int:
        return self.counts[FAILED]
