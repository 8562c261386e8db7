"""The drift step: see script.py."""

import sys

from skyops.pipeline.runtime import run
from skyops.steps.drift.script import main

sys.exit(run(main))
