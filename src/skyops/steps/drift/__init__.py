"""The drift step: see script.py."""
