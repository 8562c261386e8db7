"""The window step: see script.py."""
