"""Evaluation maths and reports, in numpy: AP and its slices (`detmetrics`, `slices`), the standard COCO
metrics through faster-coco-eval (`coco`), the confusion matrix and the worst images (`mistakes`), and
the self-contained HTML evaluation report (`report`).

Below `skyops.training` and `skyops.data`: nothing here runs a model or reads a dataset layout; the
training package records what Ultralytics' validator scored (`scored.ScoredImage`) and hands it over.
matplotlib, jinja2 and faster-coco-eval load inside the functions that use them.
"""
