"""The validate step: see script.py."""
