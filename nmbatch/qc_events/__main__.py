from nmbatch.engine.cli import main
from nmbatch.qc_events.job import QCEventsJob

main(QCEventsJob)
