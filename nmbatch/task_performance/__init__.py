"""Task performance per IBL session: correctness, block structure and psychometric fits.

Run it as ``python -m nmbatch.task_performance``; parameters are in ``jobs/task_performance.yaml``.
"""
