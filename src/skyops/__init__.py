"""skyops: MLOps for YOLO11 object detection on drone imagery."""

__version__ = "0.1.0"
