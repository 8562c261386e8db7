import sys

from skyops.pipeline.runtime import run
from skyops.steps.train.script import main

sys.exit(run(main))
