"""Synthetic CPU-bound items: the engine's demo, test and benchmark job."""

from nmbatch.synthetic.job import SyntheticJob

__all__ = ["SyntheticJob"]
