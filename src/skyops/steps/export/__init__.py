"""The export step: see script.py."""
