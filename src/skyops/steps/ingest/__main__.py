import sys

from skyops.pipeline.runtime import run
from skyops.steps.ingest.script import main

sys.exit(run(main))
