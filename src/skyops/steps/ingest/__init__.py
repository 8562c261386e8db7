"""The ingest step: see script.py."""
