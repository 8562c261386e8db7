import sys

from skyops.pipeline.runtime import run
from skyops.steps.evaluate.script import main

sys.exit(run(main))
