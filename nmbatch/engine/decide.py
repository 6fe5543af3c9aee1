"""Asking the person: the parameter-change decision of the command line.

The cache only reports what changed (:meth:`AnalysisCache.config_check`); this is
where the diff is shown and recompute / continue / abort is asked at a terminal, or
taken from ``--force`` / ``--on-config-change`` when there is none.
"""

from __future__ import annotations

import logging
import sys

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.changes import ConfigCheck

log = logging.getLogger(__name__)

CHOICES = {"r": "recompute", "c": "continue", "a": "abort"}


def ask() -> str:
    """The predecessor's prompt: [r]ecompute / [c]ontinue / [a]bort, until one is given."""
    print(
        "Options:\n  [r] Recompute all (clear cache)\n"
        "  [c] Continue (inconsistent results)\n  [a] Abort\n"
    )
    while True:
        try:
            answer = input("Choice: ").strip().lower()[:1]
        except EOFError:
            return "abort"
        if answer in CHOICES:
            return CHOICES[answer]


def decide(
    cache: AnalysisCache,
    force: bool = False,
    on_change: str | None = None,
    interactive: bool | None = None,
    check: ConfigCheck | None = None,
) -> str:
    """Compare parameters and provenance with the cache's and act on the decision.

    Returns 'new', 'unchanged', 'recompute' or 'continue'; raises ConfigChangedError on
    'abort' or when nobody decided (no terminal and no flag). Nothing is cleared or
    written before the decision.
    """
    check = check or cache.config_check()
    if check.rebuilt:
        log.warning("%s", check.rebuilt)
    if check.state in ("new", "unchanged"):
        cache.accept(check, None)
        return check.state
    print(check.describe())
    if force:
        decision: str | None = "recompute"
    elif on_change:
        decision = on_change
    else:
        interactive = sys.stdin.isatty() if interactive is None else interactive
        decision = ask() if interactive else None
    check.raise_if_undecided(decision, cache.name)
    cache.accept(check, decision)
    return decision
