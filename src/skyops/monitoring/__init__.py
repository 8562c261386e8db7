"""Monitoring: features of served requests, drift against the training baseline, reports, alert events, and the
retraining and labelling loops they feed.

See docs/monitoring.md and docs/monitoring-loop.md. Modules are imported by name; this package imports nothing.
"""
