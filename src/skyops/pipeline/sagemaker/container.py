"""What runs first inside a skyops SageMaker job: unpack the code archive, set the env, start the step.

Processing jobs do it in their ContainerEntrypoint (a `/bin/sh -c` line, see jobs.py). Training jobs
cannot: SageMaker starts them as `<image> train` and hands over only files, the channels under
/opt/ml/input/data and /opt/ml/input/config/hyperparameters.json. The image's `train` command
(docker/Dockerfile) runs `python -m skyops.pipeline.sagemaker.container`, which reads the step's
module and env vars from hyperparameters the compiler added (keys starting with `_skyops_`, which
the step runtime ignores), unpacks the `skyops_code` channel and replaces itself with
`python -m <module>` importing the unpacked code first. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

ARCHIVE_NAME = "sourcedir.tar.gz"
CODE_INPUT = "skyops_code"  # processing input name and training channel of the code archive
PROCESSING_CODE_DIR = "/opt/ml/processing/skyops_code"  # outside .../input/, so no port can collide with it
UNPACKED_CODE_DIR = "/tmp/skyops-code"
ENTRY_POINT_KEY = "_skyops_entry_point"  # hyperparameter: module to run
ENV_KEY_PREFIX = "_skyops_env_"  # hyperparameters: one env var each, e.g. _skyops_env_SKYOPS_RUN_ID
HYPERPARAMETERS = Path("/opt/ml/input/config/hyperparameters.json")
TRAINING_CODE_ARCHIVE = Path("/opt/ml/input/data") / CODE_INPUT / ARCHIVE_NAME


def launch_plan(hyperparameters: Mapping[str, str], environ: Mapping[str, str], code_dir: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the step named in `hyperparameters`.

    Raises:
        SystemExit: the hyperparameters name no module (the job was not compiled by skyops).
    """
    module = hyperparameters.get(ENTRY_POINT_KEY)
    if not module:
        raise SystemExit(f"error: {HYPERPARAMETERS} has no {ENTRY_POINT_KEY}; this image runs steps compiled by `skyops sagemaker compile`")
    env = dict(environ)
    env.update({key[len(ENV_KEY_PREFIX) :]: str(value) for key, value in hyperparameters.items() if key.startswith(ENV_KEY_PREFIX)})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_dir, environ.get("PYTHONPATH", "")]))
    return [sys.executable, "-m", module], env


def unpack(archive: Path, destination: Path) -> None:
    """Extract the code archive; tarfile's 'data' filter refuses absolute paths, '..' and devices."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(destination, filter="data")


def main(hyperparameters_file: Path = HYPERPARAMETERS, archive: Path = TRAINING_CODE_ARCHIVE, code_dir: str = UNPACKED_CODE_DIR) -> None:
    """Entry point of a training job: never returns, the step's process replaces this one."""
    hyperparameters = json.loads(hyperparameters_file.read_text()) if hyperparameters_file.is_file() else {}
    if archive.is_file():
        unpack(archive, Path(code_dir))
    argv, env = launch_plan(hyperparameters, os.environ, code_dir if archive.is_file() else "")
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main()
