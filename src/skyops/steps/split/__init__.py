"""The split step: see script.py."""
