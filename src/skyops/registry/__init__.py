"""Registry and governance: who may do what (`roles`), and the append-only, hash-chained audit log (`audit`).

Nothing here imports a heavy library; the MLflow model registry code builds on these two modules.
"""
