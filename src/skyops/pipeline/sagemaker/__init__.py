"""The SageMaker engine: compiles a `Pipeline` to a SageMaker pipeline definition (JSON, version 2020-12-01).

    settings = SageMakerSettings(bucket="my-bucket", role_arn=..., region="eu-west-1", image_uris={...})
    archive = build_code_archive({"skyops": Path(skyops.__file__).parent})
    definition = compile_pipeline(pipeline, with_code(settings, archive), {"dataset": "s3://my-bucket/visdrone/"})

A pure function of the pipeline and the settings: no AWS call, no SageMaker SDK, no clock. Sending
the definition to AWS is the AWS layer's job. Names load on first use (like skyops.pipeline), so a
command loads only what it uses. Each job kind is written by its renderer (render.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "SageMakerSettings": "settings",
    "settings_from_env": "settings",
    "CodeArchive": "archive",
    "build_code_archive": "archive",
    "with_code": "archive",
    "compile_pipeline": "compile",
    "infrastructure_parameters": "compile",
}

__all__ = [
    "CodeArchive",
    "SageMakerSettings",
    "build_code_archive",
    "compile_pipeline",
    "infrastructure_parameters",
    "settings_from_env",
    "with_code",
]

if TYPE_CHECKING:
    from skyops.pipeline.sagemaker.archive import CodeArchive, build_code_archive, with_code
    from skyops.pipeline.sagemaker.compile import compile_pipeline, infrastructure_parameters
    from skyops.pipeline.sagemaker.settings import SageMakerSettings, settings_from_env


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'skyops.pipeline.sagemaker' has no attribute {name!r}")
    return getattr(importlib.import_module(f"skyops.pipeline.sagemaker.{module}"), name)
