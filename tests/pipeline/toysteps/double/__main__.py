import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.double.script import main

sys.exit(run(main))
