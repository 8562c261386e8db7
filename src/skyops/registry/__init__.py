"""Registry and governance: who may do what (`roles`), and the write-ahead, hash-chained audit log (`audit`), anchored by `anchor`.

Nothing here imports a heavy library; the MLflow model registry code builds on these modules.
"""
