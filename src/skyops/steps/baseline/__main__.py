"""The baseline step: see script.py."""

import sys

from skyops.pipeline.runtime import run
from skyops.steps.baseline.script import main

sys.exit(run(main))
