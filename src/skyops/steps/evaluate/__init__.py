"""The evaluate step: see script.py."""
