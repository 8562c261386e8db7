"""The baseline step: see script.py."""
