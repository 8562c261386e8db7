"""The train step: see script.py."""
