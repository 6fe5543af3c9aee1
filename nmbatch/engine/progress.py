"""Progress a person can follow: a bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    """A tqdm bar on a terminal; a log line every ``interval`` seconds otherwise."""

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
