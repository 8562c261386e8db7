import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.ticker.script import main

sys.exit(run(main))
