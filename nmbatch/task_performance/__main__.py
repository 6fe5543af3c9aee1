"""``python -m nmbatch.task_performance``: run the task-performance job through the engine CLI."""

from nmbatch.engine.cli import main
from nmbatch.task_performance.job import TaskPerformanceJob

main(TaskPerformanceJob)
