"""The local engine: runs a pipeline on this machine, steps as subprocesses, results cached.

Steps start as soon as their upstream steps finish (at most `workers` at once). Each step's
outputs are written to a private staging folder and renamed into the cache only when the step
succeeded, so a crash never leaves a visible half-written artifact. Running again resumes: steps
that finished hit the cache.
"""

from __future__ import annotations

import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, SkyopsError
from skyops.pipeline.builders import builder_for
from skyops.pipeline.cache import Cache, CodeMemo, KeyParts, code_digest, explain_miss, library_versions, should_run
from skyops.pipeline.config import config_to_dict
from skyops.pipeline.contract import RUN_CONTEXT_ENV
from skyops.pipeline.definition import Pipeline, StepNode
from skyops.pipeline.gates import evaluate_gate
from skyops.pipeline.hashing import StatMemo, hash_tree, write_json_atomic
from skyops.pipeline.launch import Launcher, default_launcher
from skyops.pipeline.lineage import RunRecord, StepRecord, StepStatus, new_record, new_run_id, save_record
from skyops.pipeline.wiring import ExternalRef, OutputRef, ParamRef

Listener = Callable[[StepRecord], None]


@dataclass(frozen=True)
class StateDir:
    """The engine's folder (default `.skyops/`): cache, staging, checkpoints, runs."""

    root: Path

    @property
    def cache(self) -> Cache:
        return Cache(self.root / "cache", self.root / "staging")

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def checkpoints(self, pipeline: str, step: str) -> Path:
        return self.root / "checkpoints" / pipeline / step

    def last_parts(self, pipeline: str, step: str) -> Path:
        return self.root / "last" / pipeline / f"{step}.json"


class LocalEngine:
    """Runs pipelines locally.

    Args:
        state: the state folder.
        code_roots: top-level package name -> folder, whose sources enter cache keys.
        workers: most steps running at once.
        launcher: starts step processes (default: fork from a warm host on Linux).
        use_cache: False re-runs every step (and still publishes the results).
    """

    def __init__(
        self, state: StateDir, *, code_roots: Mapping[str, Path], workers: int = 2, launcher: Launcher | None = None, use_cache: bool = True
    ) -> None:
        self.state = state
        self.code_roots = dict(code_roots)
        self.workers = max(1, workers)
        self._launcher = launcher
        self.use_cache = use_cache
        self._lock = threading.Lock()

    def run(
        self, pipeline: Pipeline, overrides: Mapping[str, str] | None = None, *, listener: Listener | None = None, run_id: str | None = None
    ) -> RunRecord:
        """Run every step whose inputs are ready; return the run's lineage record (also saved)."""
        overrides = dict(overrides or {})
        params = pipeline.resolve_parameters(overrides)
        configs = {node.name: node.resolved_config(params) for node in pipeline.steps}
        # The step host boots beside the run's preparation when steps will likely run (a first run here, or
        # --no-cache); a re-run, likely served from the cache, starts it only if a step has to run after all.
        likely_cold = not self.use_cache or not all(self.state.last_parts(pipeline.name, n.name).is_file() for n in pipeline.steps)
        launcher = self._launcher or default_launcher(
            tuple(sorted({n.definition.script_module for n in pipeline.steps})), start=likely_cold
        )
        memo = StatMemo(self.state.root / "input-hashes.json")
        code_memo = CodeMemo(self.state.root / "code-memo.json")  # import closures earlier runs followed: not parsed again
        try:
            record = new_record(
                run_id or new_run_id(), pipeline.name, params, {n.name: n.definition.name for n in pipeline.steps}, pipeline.source
            )
            named = not pipeline.source or Path(pipeline.source).stem == pipeline.name  # found by name in pipelines/
            record.resume_command = (
                "skyops run "
                + shlex.quote(pipeline.name if named else pipeline.source)
                + "".join(f" --param {shlex.quote(f'{k}={v}')}" for k, v in sorted(overrides.items()))
            )
            cache = self.state.cache
            cache.clean_staging()
            self._save(record)
            self._schedule(pipeline, params, configs, record, cache, memo, launcher, listener or (lambda _step: None))
        finally:
            if self._launcher is None:
                launcher.close()
            memo.save()
            code_memo.save()
        failed = [s for s in record.steps.values() if s.status is StepStatus.FAILED]
        gated = [name for name, g in record.gates.items() if not g["passed"]]
        record.status = "failed" if failed else "gated" if gated else "succeeded"
        record.ended = time.time()
        self._save(record)
        return record

    def _schedule(
        self,
        pipeline: Pipeline,
        params: dict[str, Any],
        configs: dict[str, Any],
        record: RunRecord,
        cache: Cache,
        memo: StatMemo,
        launcher: Launcher,
        notify: Listener,
    ) -> None:
        pending = {node.name for node in pipeline.steps}
        running: dict[Future[None], str] = {}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="step") as pool:
            while pending or running:
                for name in sorted(pending):
                    upstream = [record.steps[u].status for u in pipeline.upstream_of(name)]
                    gates = [record.gates.get(g.name) for g in pipeline.gated_by(name)]
                    blocked = next((s for s in (StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.GATED) if s in upstream), None)
                    if blocked or any(g is not None and not g["passed"] for g in gates):
                        pending.discard(name)
                        record.steps[name].status = (
                            StepStatus.SKIPPED if blocked in (StepStatus.FAILED, StepStatus.SKIPPED) else StepStatus.GATED
                        )
                        notify(record.steps[name])
                    elif all(s.finished for s in upstream) and all(g is not None for g in gates) and len(running) < self.workers:
                        pending.discard(name)
                        future = pool.submit(
                            self._run_step, pipeline, pipeline.step(name), params, configs[name], record, cache, memo, launcher, notify
                        )
                        running[future] = name
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    self._check_gates(pipeline, name, params, record)
                    error = future.exception()
                    if error is not None:  # a framework error for this step: record it, keep going
                        step = record.steps[name]
                        step.status, step.ended = StepStatus.FAILED, time.time()
                        step.error = error.message if isinstance(error, SkyopsError) else f"{type(error).__name__}: {error}"
                        self._save(record)
                        notify(step)
                        if not isinstance(error, SkyopsError):
                            raise error

    def _check_gates(self, pipeline: Pipeline, name: str, params: dict[str, Any], record: RunRecord) -> None:
        """Evaluate the gates that read step `name`, once it has finished."""
        step = record.steps[name]
        gates = [g for g in pipeline.gates if g.step == name]
        if not gates:
            return
        for gate in gates:
            if step.status.finished:
                result = evaluate_gate(gate, Path(step.outputs[gate.output]["path"]), params)
                record.gates[gate.name] = {
                    "passed": result.passed,
                    "details": result.details,
                    "message": gate.message,
                    "guards": list(gate.guards),
                }
            else:
                record.gates[gate.name] = {
                    "passed": False,
                    "details": [f"step {name!r} did not finish"],
                    "message": gate.message,
                    "guards": list(gate.guards),
                }
        self._save(record)

    def _run_step(
        self,
        pipeline: Pipeline,
        node: StepNode,
        params: dict[str, Any],
        config: Any,
        record: RunRecord,
        cache: Cache,
        memo: StatMemo,
        launcher: Launcher,
        notify: Listener,
    ) -> None:
        step = record.steps[node.name]
        definition = node.definition
        step.started = time.time()
        step.config = config_to_dict(config)
        inputs = self._resolve_inputs(pipeline, node, params, record, memo)
        step.inputs = {port: {"source": src, "path": str(path), "digest": digest} for port, (src, path, digest) in inputs.items()}
        env = {**pipeline.env, **node.env}
        progress = record_dir(self.state, record) / "logs" / f"{node.name}.progress.jsonl"  # runtime.report_progress appends to it
        context = dict(zip(RUN_CONTEXT_ENV, (record.run_id, node.name, str(self.state.root), record.user, str(progress)), strict=True))
        missing = [name for name in definition.contract.required_env if name not in env and name not in os.environ]
        if missing:
            raise ConfigError(
                f"step {node.name!r} needs env vars {', '.join(missing)}", hint="set them in the pipeline's env: section or in your shell"
            )
        contract_env = {
            k: env.get(k, os.environ.get(k, ""))
            for k in sorted(definition.contract.env_names - set(RUN_CONTEXT_ENV))
            if k in env or k in os.environ
        }
        parts = KeyParts(
            step=definition.name,
            code=code_digest(definition.package_dir, self.code_roots),
            config=step.config,
            inputs={port: digest for port, (_, _, digest) in inputs.items()},
            env=contract_env,
            libraries=library_versions(definition.libraries),
        )
        step.cache_key = parts.key
        last_path = self.state.last_parts(pipeline.name, node.name)
        entry = cache.lookup(parts.key)
        run_it, step.cache_reason = should_run(entry, use_cache=self.use_cache)
        if not run_it and entry is not None:
            step.status = StepStatus.CACHED
            step.outputs = {port: {"path": str(entry.output_dir(port)), "digest": digest} for port, digest in entry.outputs.items()}
            step.ended = time.time()
            self._save(record)
            notify(step)
            return
        step.miss_reasons = explain_miss(_read_parts(last_path), parts)
        log_file = record_dir(self.state, record) / "logs" / f"{node.name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        step.log, step.progress = str(log_file), str(progress)
        step.status = StepStatus.RUNNING
        notify(step)
        staged = cache.stage(parts.key)
        out_dirs = {port: staged / "outputs" / port for port in definition.contract.outputs}
        checkpoints = self.state.checkpoints(pipeline.name, node.name) if definition.contract.checkpoint_path else None
        task = builder_for(definition.contract).local_task(
            definition, config, {p: path for p, (_, path, _) in inputs.items()}, out_dirs, checkpoints
        )
        step.command = task.command()
        with open(log_file, "wb") as log:
            log.write(f"$ {step.command}\n".encode())
            log.flush()
            step.exit_code = launcher.launch(task.module, task.argv, {**os.environ, **env, **context, **task.env}, log)
        if step.exit_code != 0:
            shutil.rmtree(staged, ignore_errors=True)
            step.status, step.ended = StepStatus.FAILED, time.time()
            self._save(record)
            notify(step)
            return
        digests = {port: hash_tree(path) for port, path in out_dirs.items()}
        published = cache.publish(staged, parts, {port: d.digest for port, d in digests.items()}, replace=not self.use_cache)
        write_json_atomic(last_path, parts.as_dict())
        if checkpoints is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)  # finished: nothing left to resume
        step.outputs = {
            port: {"path": str(published.output_dir(port)), "digest": d.digest, "files": d.count} for port, d in digests.items()
        }
        step.status, step.ended = StepStatus.DONE, time.time()
        self._save(record)
        notify(step)

    def _resolve_inputs(
        self, pipeline: Pipeline, node: StepNode, params: dict[str, Any], record: RunRecord, memo: StatMemo
    ) -> dict[str, tuple[str, Path, str]]:
        """Input port -> (source description, local path, content digest)."""
        resolved = {}
        for edge in pipeline.inputs_of(node.name):
            source = edge.source
            if isinstance(source, OutputRef):
                out = record.steps[source.step].outputs[source.port]
                resolved[edge.port] = (str(source), Path(out["path"]), out["digest"])
                continue
            assert isinstance(source, ExternalRef)
            location = str(params[source.location.name]) if isinstance(source.location, ParamRef) else source.location
            if not location:
                if node.definition.spec.input(edge.port).optional:
                    continue
                raise ConfigError(
                    f"step {node.name!r} input {edge.port!r} is bound to {source}, which is empty", hint="give it a value with --param"
                )
            if location.startswith("s3://"):
                raise ConfigError(
                    f"step {node.name!r} input {edge.port!r} is {location}; the local engine reads local paths",
                    hint="download it first, or run on SageMaker with `skyops sagemaker start`",
                )
            path = Path(location).expanduser().resolve()
            if not path.exists():
                raise ConfigError(
                    f"step {node.name!r} input {edge.port!r}: {path} does not exist", hint=f"check the path given to {source}"
                )
            resolved[edge.port] = (f"external {location}", path, hash_tree(path, memo).digest)
        return resolved

    def _save(self, record: RunRecord) -> None:
        with self._lock:
            save_record(self.state.runs, record)


def record_dir(state: StateDir, record: RunRecord) -> Path:
    return state.runs / record.run_id


def _read_parts(path: Path) -> KeyParts | None:
    import json

    try:
        return KeyParts(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
