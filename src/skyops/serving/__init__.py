"""Serving: the exported model package, the inference server and its backends, data capture."""
