"""Training: Ultralytics YOLO11 run fully offline (`ultra`), checkpointed training with resume (`train`),
and MLflow tracking on an embedded sqlite store (`tracking`).

Nothing here is imported by the CLI at start-up; torch, ultralytics and mlflow load inside functions.
"""

from skyops.training.threads import prepare_openmp

prepare_openmp()  # before any module of this package imports torch (threads.py says why)
