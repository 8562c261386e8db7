import sys

from skyops.pipeline.runtime import run
from tests.pipeline.toysteps.registrar.script import main

sys.exit(run(main))
