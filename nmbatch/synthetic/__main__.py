from nmbatch.engine.cli import main
from nmbatch.synthetic.job import SyntheticJob

main(SyntheticJob)
