"""Tiny test-only steps that exercise the core without any domain code."""

from skyops.pipeline.catalog import Catalog

CATALOG = Catalog(__name__)
