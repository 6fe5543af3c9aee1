from nmbatch.engine.cli import main
from nmbatch.mea.job import MeaJob

main(MeaJob)
