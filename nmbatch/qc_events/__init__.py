"""QC-pass visit events for the JSON form files of an exported Flywheel project.

Run as ``python -m nmbatch.qc_events --project DIR --sink DEST`` (or ``--demo``);
the job is :class:`nmbatch.qc_events.job.QCEventsJob`, its parameters
``jobs/qc_events.yaml``; the rules (QC-log names, status, metadata) are in
:mod:`nmbatch.qc_events.rules`, the event model in :mod:`nmbatch.qc_events.models`.
"""
