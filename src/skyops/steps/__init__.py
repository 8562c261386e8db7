"""Built-in steps, one package each: `spec.py` (spec, contract, config) and `script.py` (main)."""

from skyops.pipeline.catalog import Catalog

CATALOG = Catalog(__name__)
