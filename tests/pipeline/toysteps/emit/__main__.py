import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.emit.script import main

sys.exit(run(main))
