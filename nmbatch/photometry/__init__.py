"""Photometry QC of IBL sessions: ``python -m nmbatch.photometry``.

See :mod:`nmbatch.photometry.job` for what runs per session and :mod:`nmbatch.photometry.qc`
for the metrics; the parameters are in ``jobs/photometry.yaml`` (over ``jobs/general.yaml``).
"""
