"""Evaluation maths in numpy: AP and its slices (`detmetrics`, `slices`), the standard COCO metrics
through faster-coco-eval (`coco`), the confusion matrix and the worst images (`mistakes`).

Below `skyops.training` and `skyops.data`: nothing here runs a model or reads a dataset layout; the
training package records what Ultralytics' validator scored (`scored.ScoredImage`) and hands it over.
faster-coco-eval loads inside the function that uses it.
"""
