"""What every worker imports as it starts (the job's ``worker_preload``), before its first session.

iblphotometry's import (3-5 s) and the compiled Grubbs loop (numba: loaded from its on-disk
cache, or compiled on first use) then overlap the cluster's start-up.
"""

from nmbatch.photometry import job  # noqa: F401  (imports iblphotometry, ONE)
from nmbatch.photometry.grubbs import compile_now

compile_now()
