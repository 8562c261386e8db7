import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.total.script import main

sys.exit(run(main))
