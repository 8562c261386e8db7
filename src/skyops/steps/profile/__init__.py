"""The profile step: see script.py."""
