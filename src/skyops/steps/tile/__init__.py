"""The tile step: see script.py."""
