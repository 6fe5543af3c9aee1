"""Synthetic items with known results, planted failures and planted worker deaths.

Item ``item-000042`` has value ``scale * sqrt(42)``. ``--fail ID`` makes an item
raise at stage ``compute``; ``--kill-worker ID`` makes it kill the worker process
running it (as an out-of-memory kill would), on every try.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.job import Item, ItemContext, ItemResult, Job, Listing


def item_id(index: int) -> str:
    return f"item-{index:06d}"


def burn_cpu(seconds: float) -> None:
    """Busy-wait for ``seconds`` of wall time (the stand-in for an analysis)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(200))


class SyntheticJob(Job):
    name = "synthetic"
    description = "Synthetic CPU-bound items with known results (engine demo and benchmark)"
    id_column = "item_id"
    label_column = "subject"
    code_version = "1"
    result_libraries = ("numpy",)

    def __init__(self, n_items: int = 20, fail: tuple[str, ...] = (), kill: tuple[str, ...] = ()):
        self.n_items = n_items
        self.fail = frozenset(fail)
        self.kill = frozenset(kill)

    @classmethod
    def add_arguments(cls, parser: argparse._ArgumentGroup) -> None:
        parser.add_argument(
            "--items", type=int, default=20, help="how many items to list (default 20)"
        )
        parser.add_argument(
            "--fail",
            action="append",
            default=[],
            metavar="ID",
            help="make this item fail at stage 'compute' (repeatable)",
        )
        parser.add_argument(
            "--kill-worker",
            action="append",
            default=[],
            metavar="ID",
            help="make this item kill the worker process running it (repeatable)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SyntheticJob:
        return cls(args.items, tuple(args.fail), tuple(args.kill_worker))

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        return {"values": pa.schema([("index", pa.int64()), ("value", pa.float64())])}

    def validate_params(self, params: Mapping[str, Any]) -> None:
        for key in ("work_ms", "series_length"):
            if params[key] < 0:
                raise ConfigError(f"{key} must be >= 0, not {params[key]!r}")

    def list_items(self, params: Mapping[str, Any]) -> Listing:
        items = [
            Item(item_id(i), label=f"subject-{i % 7}", data={"index": i})
            for i in range(self.n_items)
        ]
        return Listing(items)

    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        with ctx.stage("prepare"):
            index = int(item.data["index"])
        with ctx.stage("compute"):
            burn_cpu(ctx.params["work_ms"] / 1000)
            if item.id in self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            if item.id in self.fail:
                raise ValueError(f"planted failure in {item.id}")
            value = ctx.params["scale"] * math.sqrt(index)
        arrays = {}
        if ctx.params["series_length"]:
            arrays["series"] = np.full(ctx.params["series_length"], value)
        return ItemResult(
            tables={"values": pd.DataFrame({"index": [index], "value": [value]})},
            arrays=arrays,
            flags={"even": index % 2 == 0},
        )

    @classmethod
    def report_sections(cls, cache):
        """A histogram of the values (nmbatch.synthetic.report)."""
        from nmbatch.synthetic import report  # bokeh is for the driver, not the workers

        return report.report_sections(cache)
