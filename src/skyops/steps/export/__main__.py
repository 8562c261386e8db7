import sys

from skyops.pipeline.runtime import run
from skyops.steps.export.script import main

sys.exit(run(main))
