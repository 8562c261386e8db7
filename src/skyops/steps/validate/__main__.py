import sys

from skyops.pipeline.runtime import run
from skyops.steps.validate.script import main

sys.exit(run(main))
