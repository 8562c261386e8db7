"""What runs first inside a skyops SageMaker job: unpack the code archive, then start the step.

Processing and training jobs alike name their own entrypoint (ContainerEntrypoint): one
`/bin/sh -c` line that extracts the pipeline's code archive, which the job receives as an input
(processing) or a channel (training), into /tmp/skyops-code and replaces itself with
`python -m <module>` importing that code first. It needs nothing from the image but `sh`, `tar` and
the Python with skyops' dependencies, so the image carries no skyops bootstrap of its own, and a
code change is a new archive key (hence a miss of SageMaker's step cache), never a new image.
"""

from __future__ import annotations

ARCHIVE_NAME = "sourcedir.tar.gz"
CODE_INPUT = "skyops_code"  # processing input name and training channel of the code archive
PROCESSING_CODE_DIR = "/opt/ml/processing/skyops_code"  # outside .../input/, so no port can collide with it
TRAINING_CODE_DIR = f"/opt/ml/input/data/{CODE_INPUT}"  # where SageMaker mounts the code channel
UNPACKED_CODE_DIR = "/tmp/skyops-code"


def code_entrypoint(module: str, code_dir: str, *, with_arguments: bool, launcher: str | None = None) -> list[str]:
    """ContainerEntrypoint of a job: unpack `code_dir`/sourcedir.tar.gz, then `exec python -m module`.

    Args:
        module: the step's entry point (its contract's `entry_point`).
        code_dir: the folder where SageMaker puts the archive in this kind of job.
        with_arguments: pass the job's ContainerArguments on as "$@" (processing jobs, whose settings
            are `--name value` arguments). A training job reads its settings from hyperparameters.json,
            and SageMaker may hand its entrypoint the word `train`: it lands in $0 and is ignored.
        launcher: run `python -m launcher module` instead: the contract's launcher of a multi-instance
            training job, which starts `module` on every rank.
    """
    script = (
        f"mkdir -p {UNPACKED_CODE_DIR} && tar -xzf {code_dir}/{ARCHIVE_NAME} -C {UNPACKED_CODE_DIR}"
        f" && PYTHONPATH={UNPACKED_CODE_DIR} exec python -m {f'{launcher} {module}' if launcher else module}"
    )
    if with_arguments:
        return ["/bin/sh", "-c", script + ' "$@"', "sh"]  # "sh" is $0; the arguments become $1...
    return ["/bin/sh", "-c", script]
