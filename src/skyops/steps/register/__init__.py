"""The register step: see script.py."""
