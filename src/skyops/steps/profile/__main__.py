import sys

from skyops.pipeline.runtime import run
from skyops.steps.profile.script import main

sys.exit(run(main))
