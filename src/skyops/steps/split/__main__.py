import sys

from skyops.pipeline.runtime import run
from skyops.steps.split.script import main

sys.exit(run(main))
