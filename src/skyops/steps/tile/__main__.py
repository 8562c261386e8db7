import sys

from skyops.pipeline.runtime import run
from skyops.steps.tile.script import main

sys.exit(run(main))
