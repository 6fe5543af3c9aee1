"""Run the photometry QC job from the command line."""

from nmbatch.engine.cli import main
from nmbatch.photometry.job import PhotometryQCJob

main(PhotometryQCJob)
