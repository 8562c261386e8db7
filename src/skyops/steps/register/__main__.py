import sys

from skyops.pipeline.runtime import run
from skyops.steps.register.script import main

sys.exit(run(main))
