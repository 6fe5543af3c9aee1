"""Retina CMOS-MEA recordings (CMCR/CMTR) through the pipeline steps to one HDF5 file each.

Run as ``python -m nmbatch.mea --csv mapping.csv --output OUT`` (or ``--demo``);
the job is :class:`nmbatch.mea.job.MeaJob`, its parameters ``jobs/mea.yaml``.
"""
