"""Monitoring: features of served requests, drift against the training baseline, reports, alerts and the loops they feed.

See docs/monitoring.md. Modules are imported by name; this package imports nothing.
"""
