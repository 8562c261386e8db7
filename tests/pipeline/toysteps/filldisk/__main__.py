import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.filldisk.script import main

sys.exit(run(main))
