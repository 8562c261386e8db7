import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.writer.script import main

sys.exit(run(main))
