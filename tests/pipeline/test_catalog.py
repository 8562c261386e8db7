"""Catalog.load is all or nothing: a step that fails to import leaves no partial catalog, and a retry after the fix loads all."""

from __future__ import annotations

import importlib

import pytest

from skyops.errors import PipelineError


def test_a_broken_step_leaves_no_partial_catalog_and_the_fix_loads_everything(scratch_package) -> None:
    scratch_package("fine", 'outputs["out"].joinpath("x").write_text("1")')
    broken = scratch_package("broken", "pass")
    good_source = broken.read_text()
    broken.write_text(good_source.replace("def main(inputs, outputs, env, args):", "def main(inputs, outputs, env):"))
    catalog = importlib.import_module(scratch_package.package).CATALOG

    with pytest.raises(PipelineError, match=r"1 problem in catalog .*\n  - broken: script .*takes \(inputs, outputs, env\)"):
        catalog.load()
    # Every later use fails the same way: 'fine' registered, but a catalog without 'broken' is never served.
    with pytest.raises(PipelineError, match=r"1 problem in catalog"):
        catalog.get("fine")
    with pytest.raises(PipelineError, match=r"1 problem in catalog"):
        list(catalog)

    broken.write_text(good_source)
    importlib.invalidate_caches()
    assert [d.name for d in catalog] == ["broken", "fine"]
    assert catalog.get("broken").script_module == f"{scratch_package.package}.broken.script"


def test_a_step_module_that_raises_after_registering_is_dropped_and_registers_afresh(scratch_package) -> None:
    script = scratch_package("late", "pass")
    good_source = script.read_text()
    script.write_text(good_source + "\nraise RuntimeError('late failure after the decorator ran')\n")
    catalog = importlib.import_module(scratch_package.package).CATALOG

    with pytest.raises(RuntimeError, match="late failure"):  # not a SkyopsError: a bug, with its traceback
        catalog.load()
    with pytest.raises(RuntimeError, match="late failure"):
        catalog.get("late")

    script.write_text(good_source.replace('optional_env={"SCRATCH_MODE": "plain"}', 'optional_env={"SCRATCH_MODE": "fixed"}'))
    importlib.invalidate_caches()
    definition = catalog.get("late")
    assert definition.contract.optional_env == {"SCRATCH_MODE": "fixed"}  # the fixed module's definition, not the first one
