"""The window step: see script.py."""

import sys

from skyops.pipeline.runtime import run
from skyops.steps.window.script import main

sys.exit(run(main))
