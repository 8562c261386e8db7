"""Serving: the exported model package, the inference server with SageMaker's container contract, data capture."""
