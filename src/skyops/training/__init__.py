"""Training: Ultralytics YOLO11 run fully offline (`ultra`), checkpointed training with resume (`train`),
and MLflow tracking on an embedded sqlite store (`tracking`).

Nothing here is imported by the CLI at start-up; torch, ultralytics and mlflow load inside functions.
"""
