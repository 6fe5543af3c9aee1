"""Dask preload for every worker nmbatch starts: quiet, and deaf to the terminal's Ctrl-C.

A Ctrl-C at the terminal reaches the whole process group; the driver stops the run
cleanly, so workers ignore SIGINT instead of printing tracebacks. Dask's own log
lines go to the run's log file (``nmbatch.run.log-file``) instead of the terminal,
unless the run is ``--debug``.
"""

from __future__ import annotations

import logging
import os
import signal

import dask.config


class QuietFileHandler(logging.FileHandler):
    """A log file that, when it cannot be written (a full disk), drops lines instead of
    printing a traceback to the terminal: the run itself says what the disk did."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


def route_logs_to_file(path: str, who: str) -> None:
    """Send Dask's, tornado's and bokeh's log lines to ``path`` only, not to the terminal."""
    handler = QuietFileHandler(path)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {who} %(name)s %(levelname)s: %(message)s")
    )
    for name in ("distributed", "tornado", "bokeh"):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def dask_setup(worker: object) -> None:
    """Called by Dask in the worker process as it starts."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log_file = dask.config.get("nmbatch.run.log-file", None)
    if log_file:
        route_logs_to_file(log_file, f"worker {os.getpid()}")
