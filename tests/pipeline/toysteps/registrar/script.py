"""Source step whose result lives outside the cache: an entry in a toy registry (a folder in the
state dir), like a registered model version. Its recheck says whether that entry still exists.

The entry's content steers the recheck in tests: "raise" -> a plain exception, "refuse" -> a
SkyopsError.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skyops.errors import SkyopsError
from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class RegistrarConfig(StepConfig):
    name: str = "model"


SPEC = StepSpec(step_type="registrar", node_type=NodeType.SOURCE, outputs=(Port(name="entry", kind="registration"),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.registrar",
    job_kind=JobKind.PROCESSING,
    outputs={"entry": processing_output("entry")},
    optional_env={"SKYOPS_STATE_DIR": "", "SKYOPS_RUN_ID": ""},
)


def entry_path(state_dir: str, name: str) -> Path:
    return Path(state_dir) / "toy-registry" / name


def recheck(outputs: Mapping[str, Path], env: Mapping[str, str]) -> str | None:
    name = (outputs["entry"] / "name.txt").read_text()
    entry = entry_path(env["SKYOPS_STATE_DIR"], name)
    if not entry.is_file():
        return f"registry entry {name!r} is gone"
    content = entry.read_text()
    if content == "raise":
        raise RuntimeError(f"registry entry {name!r} is unreadable")
    if content == "refuse":
        raise SkyopsError(f"the registry refused to say whether {name!r} exists", hint="log in to the registry")
    return None


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=RegistrarConfig, recheck=recheck)
def main(inputs, outputs, env, args):
    entry = entry_path(env["SKYOPS_STATE_DIR"], args.name)
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(f"registered by run {env['SKYOPS_RUN_ID']}\n")
    (outputs["entry"] / "name.txt").write_text(args.name)
