"""Named points where the fault-injection tests kill the driver (``NMBATCH_FAULT``).

``NMBATCH_FAULT=after-commit:5`` makes the 5th pass through ``checkpoint("after-commit")``
kill this process with SIGKILL, as the OOM killer or a batch system would. Unset (always,
outside the tests) a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_passes: Counter = Counter()


def checkpoint(name: str) -> None:
    """Die here if ``NMBATCH_FAULT`` names this point and its count is reached."""
    spec = os.environ.get("NMBATCH_FAULT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _passes[name] += 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
