"""The local engine: runs a pipeline on this machine, steps as subprocesses, results cached.

Steps start as soon as their upstream steps finish (at most `workers` at once); what a step does
next is decided by one predicate (`schedule.next_action`). Each step's outputs are written to a
private staging folder and renamed into the cache only when the step succeeded, so a crash never
leaves a visible half-written artifact. Running again resumes: steps that finished hit the cache.

Concurrent runs share the state folder safely: a step execution holds a lock on its cache key
(another run needing the same result waits, then reuses it) and owns its checkpoint folder
`checkpoints/<key>/`. A run always ends its record: "succeeded", "gated", "failed", or "killed"
when a signal stopped it (its step processes are stopped too). A full or read-only state folder is
one clear `StateError`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, RunInterrupted, SkyopsError, StateError, StepFailed
from skyops.pipeline.builders import builder_for
from skyops.pipeline.cache import (
    Cache,
    CodeMemo,
    KeyParts,
    bound_recheck,
    code_digest,
    explain_miss,
    lacking_files,
    library_versions,
    should_run,
)
from skyops.pipeline.config import config_to_dict
from skyops.pipeline.contract import PROGRESS_ENV, RUN_CONTEXT_ENV
from skyops.pipeline.definition import Pipeline, StepNode
from skyops.pipeline.faults import check_writable, writing
from skyops.pipeline.gates import GateResult, evaluate_gate
from skyops.pipeline.hashing import StatMemo, hash_tree, write_json_atomic
from skyops.pipeline.inputs import Fetched, Fetcher, Resolved, Resolver, fetch_external, resolve_inputs, resolve_sources
from skyops.pipeline.launch import ForkLauncher, Launcher, default_launcher
from skyops.pipeline.lineage import RunRecord, RunStatus, StepRecord, StepStatus, end_unfinished, new_record, new_run_id, save_record
from skyops.pipeline.locks import key_lock
from skyops.pipeline.schedule import Action, Interrupted, SchedulerStuck, decide, signals_interrupt

Listener = Callable[[StepRecord], None]


@dataclass(frozen=True)
class StateDir:
    """The engine's folder (default `.skyops/`): cache, staging, checkpoints, locks, runs."""

    root: Path

    @property
    def cache(self) -> Cache:
        return Cache(self.root / "cache", self.root / "staging")

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def checkpoints(self, key: str) -> Path:
        """One step execution's checkpoints: kept after a failure (a resumed run has the same key)."""
        return self.root / "checkpoints" / key

    def lock(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def last_parts(self, pipeline: str, step: str) -> Path:
        return self.root / "last" / pipeline / f"{step}.json"


@dataclass
class _Run:
    """What the steps of one run share."""

    pipeline: Pipeline
    params: dict[str, Any]
    configs: dict[str, Any]
    record: RunRecord
    cache: Cache
    memo: StatMemo
    launcher: Launcher
    notify: Listener
    sources: Resolved  # what each scheme:reference input named when the run started
    fetched: Fetched  # the local copy of each external URL input (s3://...), made when the run started
    stop: threading.Event = field(default_factory=threading.Event)  # set when the run is stopping


class LocalEngine:
    """Runs pipelines locally.

    Args:
        state: the state folder.
        code_roots: top-level package name -> folder, whose sources enter cache keys.
        workers: most steps running at once.
        launcher: starts step processes (default: fork from a warm host on Linux).
        use_cache: False re-runs every step (and still publishes the results).
        resolvers: scheme -> resolver of `scheme:reference` inputs (e.g. `registry`): the local
            folder a reference names, or None when nothing is there. Given by the caller: the core
            knows no scheme.
        fetchers: URL scheme -> fetcher of external inputs given as URLs (e.g. `s3`): a local copy of
            what the URL names and its content digest (inputs.py). Given by the caller, like resolvers.
        keep_warm: one step host for every run of this engine, kept between runs, that runs each step's
            warm hook once (`StepDefinition.warm`): for a caller that runs the same steps many times, like
            a tuning study, so each run after the first starts its steps with their imports done. A run
            that stops early (a pruned trial, Ctrl-C) takes the host down with its steps; the next run
            starts another. Call `close()` when done.
    """

    def __init__(
        self,
        state: StateDir,
        *,
        code_roots: Mapping[str, Path],
        workers: int = 2,
        launcher: Launcher | None = None,
        use_cache: bool = True,
        resolvers: Mapping[str, Resolver] | None = None,
        fetchers: Mapping[str, Fetcher] | None = None,
        keep_warm: bool = False,
    ) -> None:
        self.state = state
        self.resolvers = dict(resolvers or {})
        self.fetchers = dict(fetchers or {})
        self.code_roots = dict(code_roots)
        self.workers = max(1, workers)
        self._launcher = launcher
        self.use_cache = use_cache
        self.keep_warm = keep_warm
        self._kept: Launcher | None = None  # keep_warm's host, between runs
        self._lock = threading.Lock()

    def run(
        self, pipeline: Pipeline, overrides: Mapping[str, str] | None = None, *, listener: Listener | None = None, run_id: str | None = None
    ) -> RunRecord:
        """Run every step whose inputs are ready; return the run's lineage record (also saved).

        Raises:
            StateError: the state folder cannot be written (full, read-only); the record ends "failed".
            RunInterrupted: SIGTERM or SIGINT stopped the run; its steps were stopped, the record ends "killed".
        """
        overrides = dict(overrides or {})
        params = pipeline.resolve_parameters(overrides)
        sources = resolve_sources(pipeline, params, self.resolvers)  # once, before anything runs: one answer per run
        configs = pipeline.resolve_configs(params)
        check_writable(self.state.root)
        fetched = fetch_external(pipeline, params, self.fetchers)  # once, before anything runs: the copies may be large
        # The step host boots beside the run's preparation when steps will likely run (a first run here, or
        # --no-cache); a re-run, likely served from the cache, starts it only if a step has to run after all.
        likely_cold = not self.use_cache or not all(self.state.last_parts(pipeline.name, n.name).is_file() for n in pipeline.steps)
        launcher, owned = self._launcher_for(pipeline, likely_cold)
        memo = StatMemo(self.state.root / "input-hashes.json")
        code_memo = CodeMemo(self.state.root / "code-memo.json")  # import closures earlier runs followed: not parsed again
        record = new_record(
            run_id or new_run_id(), pipeline.name, params, {n.name: n.definition.name for n in pipeline.steps}, pipeline.source
        )
        named = not pipeline.source or Path(pipeline.source).stem == pipeline.name  # found by name in pipelines/
        record.resume_command = (
            "skyops run "
            + shlex.quote(pipeline.name if named else pipeline.source)
            + "".join(f" --param {shlex.quote(f'{k}={v}')}" for k, v in sorted(overrides.items()))
        )
        run = _Run(pipeline, params, configs, record, self.state.cache, memo, launcher, listener or (lambda _step: None), sources, fetched)
        try:
            with signals_interrupt():
                try:
                    run.cache.clean_staging()
                    self._save(record)
                    self._schedule(run)
                finally:
                    if owned:
                        launcher.close()
        except BaseException as error:
            if launcher is self._kept:  # stopped with its steps: the next run starts another host
                self.close()
            self._end_stopped(run, error)
            if isinstance(error, Interrupted):
                raise RunInterrupted(
                    f"run {record.run_id} of {pipeline.name!r} was stopped by {error}",
                    signal_number=error.signal_number,
                    hint=f"resume with: {record.resume_command}",
                ) from None
            raise
        with contextlib.suppress(OSError):  # only a speed-up for the next run
            memo.save()
            code_memo.save()
        failed = [s for s in record.steps.values() if s.status is StepStatus.FAILED]
        gated = [name for name, g in record.gates.items() if not g.passed]
        record.status = RunStatus.FAILED if failed else RunStatus.GATED if gated else RunStatus.SUCCEEDED
        record.ended = time.time()
        self._save(record)
        return record

    def _launcher_for(self, pipeline: Pipeline, likely_cold: bool) -> tuple[Launcher, bool]:
        """The launcher of one run, and whether the run owns it (closes it at its end)."""
        if self._launcher is not None:
            return self._launcher, False
        preload = tuple(sorted({n.definition.script_module for n in pipeline.steps}))
        if not self.keep_warm:
            return default_launcher(preload, start=likely_cold), True
        with self._lock:
            if self._kept is None:
                self._kept = default_launcher(preload, start=True, warm=True)
            return self._kept, False

    def warm_up(self, pipeline: Pipeline) -> None:
        """With `keep_warm`: boot the kept host now and have it run the pipeline's warm hooks, without waiting,
        so the warm-up overlaps whatever the caller does before its first run (a study opens its stores)."""
        if not self.keep_warm or self._launcher is not None:
            return
        launcher, _ = self._launcher_for(pipeline, likely_cold=True)
        if not isinstance(launcher, ForkLauncher):
            return  # a fresh interpreter per step: nothing to keep warm
        first = {n.definition.warm_hook: n for n in reversed(pipeline.steps) if n.definition.warm}  # the first step of each hook
        for hook, node in first.items():
            # The environment the step will see, as far as it is known before a run: no run id, paths or progress file yet.
            env = {**os.environ, **pipeline.env, **node.env, "SKYOPS_STATE_DIR": str(self.state.root), "SKYOPS_STEP_NAME": node.name}
            launcher.warm_up(hook, env)

    def close(self) -> None:
        """Stop the step host kept between runs (`keep_warm`); a later run starts another."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def _end_stopped(self, run: _Run, error: BaseException) -> None:
        """End the record of a run that stopped early: unfinished steps failed or skipped, saved if possible."""
        if isinstance(error, Interrupted):
            why = f"the run was stopped by {error}"
        elif isinstance(error, SkyopsError):
            why = f"the run stopped: {error.message}"
        else:
            why = f"the run stopped on an internal error: {type(error).__name__}: {error}"
        end_unfinished(run.record, RunStatus.KILLED if isinstance(error, Interrupted | KeyboardInterrupt) else RunStatus.FAILED, why)
        run.record.ended = time.time()
        with contextlib.suppress(StateError):  # the disk that failed may refuse this too; the error says why
            self._save(run.record)
        with contextlib.suppress(OSError):  # only a speed-up for the next run
            run.memo.save()

    def _schedule(self, run: _Run) -> None:
        pipeline, record = run.pipeline, run.record
        pending = [node.name for node in pipeline.steps]
        running: dict[Future[None], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="step")
        try:
            while pending or running:
                decided = True
                while decided:  # a step skipped or gated may decide a gate, which may decide other steps
                    decided = False
                    for name in list(pending):
                        decision = decide(pipeline, record, name)
                        if decision.action in (Action.SKIP, Action.GATE):
                            pending.remove(name)
                            status = StepStatus.SKIPPED if decision.action is Action.SKIP else StepStatus.GATED
                            self._end_step(run, name, status, decision.reason)
                            decided = True
                        elif decision.action is Action.START and len(running) < self.workers:
                            pending.remove(name)
                            running[pool.submit(self._run_step, run, pipeline.step(name))] = name
                if not running:
                    if pending:
                        waits = "; ".join(f"{name}: {decide(pipeline, record, name).reason}" for name in pending)
                        raise SchedulerStuck(f"internal error: steps are pending, none is running and none can start ({waits})")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    error = future.exception()
                    if error is not None:  # a framework error for this step: record it, keep going
                        step = record.steps[name]
                        step.error = error.message if isinstance(error, SkyopsError) else f"{type(error).__name__}: {error}"
                        step.status, step.ended = StepStatus.FAILED, time.time()
                        self._save(record)
                        run.notify(step)
                        if isinstance(error, StateError) or not isinstance(error, SkyopsError):
                            raise error  # the state folder cannot take writes, or a bug: stop the run
                    self._decide_gates(run)
        except BaseException:
            run.stop.set()  # steps waiting for a lock give up
            run.launcher.terminate()  # running steps are stopped
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _end_step(self, run: _Run, name: str, status: StepStatus, reason: str) -> None:
        step = run.record.steps[name]
        step.error, step.ended, step.status = reason, time.time(), status
        self._save(run.record)
        run.notify(step)
        self._decide_gates(run)

    def _decide_gates(self, run: _Run) -> None:
        """Evaluate every gate whose step has reached a final status (a step that did not finish fails its gate)."""
        record, decided = run.record, False
        for gate in run.pipeline.gates:
            step = record.steps[gate.step]
            if gate.name in record.gates or not step.status.final:
                continue
            if step.status.finished:
                result = evaluate_gate(gate, Path(step.outputs[gate.output]["path"]), run.params)
            else:
                result = GateResult.failed(gate, f"step {gate.step!r} did not finish (it {step.status})")
            with self._lock:  # a step thread may be saving the record
                record.gates[gate.name] = result
            decided = True
        if decided:
            self._save(record)

    def _run_step(self, run: _Run, node: StepNode) -> None:
        pipeline, params, record, memo = run.pipeline, run.params, run.record, run.memo
        config = run.configs[node.name]
        step = record.steps[node.name]
        definition = node.definition
        step.started = time.time()
        step.config = config_to_dict(config)
        inputs = resolve_inputs(pipeline, node, params, record, memo, run.sources, run.fetched)
        step.inputs = {port: {"source": src, "path": str(path), "digest": digest} for port, (src, path, digest) in inputs.items()}
        env = {**pipeline.env, **node.env}
        progress = record_dir(self.state, record) / "logs" / f"{node.name}.progress.jsonl"  # runtime.report_progress appends to it
        context = dict(zip(RUN_CONTEXT_ENV, (record.run_id, node.name, str(self.state.root), record.user, str(progress)), strict=True))
        missing = [name for name in definition.contract.required_env if name not in env and name not in os.environ]
        if missing:
            raise ConfigError(
                f"step {node.name!r} needs env vars {', '.join(missing)}", hint="set them in the pipeline's env: section or in your shell"
            )
        engine_set = {*RUN_CONTEXT_ENV, *builder_for(definition.contract).local_env}  # where it runs, not what it computes
        contract_env = {
            k: env.get(k, os.environ.get(k, "")) for k in sorted(definition.contract.env_names - engine_set) if k in env or k in os.environ
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
        script_env = _script_env(node, env, context) if definition.recheck else {}
        if self._reuse(run, node, parts, script_env):
            return  # a hit takes no lock: cached steps cost what they did
        with key_lock(self.state.lock(parts.key), stop=run.stop, on_wait=lambda: self._waiting(run, step)) as waited:
            step.waited = waited
            if self._reuse(run, node, parts, script_env):
                return  # another run published it since the first look (it ran while this one waited)
            self._execute(run, node, config, inputs, parts, {**env, **context})

    def _waiting(self, run: _Run, step: StepRecord) -> None:
        step.status = StepStatus.WAITING
        self._save(run.record)
        run.notify(step)

    def _reuse(self, run: _Run, node: StepNode, parts: KeyParts, env: Mapping[str, str]) -> bool:
        """Serve the step from the cache if `should_run` says so; else record why it runs."""
        step, definition = run.record.steps[node.name], node.definition
        entry = run.cache.lookup(parts.key)
        files = {p.name: p.files for p in definition.spec.outputs if p.files}
        recheck = bound_recheck(definition, node.name, entry, env) if entry is not None and definition.recheck else None
        run_it, step.cache_reason = should_run(entry, use_cache=self.use_cache, files=files, recheck=recheck)
        if run_it:
            if entry is None:
                step.miss_reasons = explain_miss(_read_parts(self.state.last_parts(run.pipeline.name, node.name)), parts)
            else:  # same key as before: the rule that decided is the reason
                step.miss_reasons = [step.cache_reason]
            return False
        assert entry is not None
        if step.waited:
            step.cache_reason = f"cache hit: another run executed this step while this one waited {step.waited:.1f} s"
        step.outputs = {port: {"path": str(entry.output_dir(port)), "digest": digest} for port, digest in entry.outputs.items()}
        step.ended = time.time()
        step.status = StepStatus.CACHED  # last: the scheduler reads outputs of a finished step
        self._save(run.record)
        run.notify(step)
        return True

    def _execute(
        self, run: _Run, node: StepNode, config: Any, inputs: dict[str, tuple[str, Path, str]], parts: KeyParts, env: dict[str, str]
    ) -> None:
        """Run the step's process with the key's lock held; publish its outputs if it succeeded."""
        record, cache, definition = run.record, run.cache, node.definition
        step = record.steps[node.name]
        log_file = record_dir(self.state, record) / "logs" / f"{node.name}.log"
        with writing("the step's log", log_file):
            log_file.parent.mkdir(parents=True, exist_ok=True)
        step.log, step.progress = str(log_file), str(env[PROGRESS_ENV])
        step.status = StepStatus.RUNNING  # told, not saved: each save costs an atomic rename (~2 ms on ext4)
        run.notify(step)
        with writing("the step's staging folder", cache.staging):
            staged = cache.stage(parts.key)
        try:
            out_dirs = {port: staged / "outputs" / port for port in definition.contract.outputs}
            checkpoints = self.state.checkpoints(parts.key) if definition.contract.checkpoint_path else None
            task = builder_for(definition.contract).local_task(
                definition, config, {p: path for p, (_, path, _) in inputs.items()}, out_dirs, checkpoints
            )
            step.command = task.command()
            with writing("the step's log", log_file):
                log_file.write_bytes(f"$ {step.command}\n".encode())
            with open(log_file, "ab") as log:
                step.exit_code = run.launcher.launch(task.module, task.argv, {**os.environ, **env, **task.env}, log, definition.warm_hook)
            if step.exit_code != 0:
                shutil.rmtree(staged, ignore_errors=True)
                if run.stop.is_set():
                    step.error = "stopped with its run"
                step.status, step.ended = StepStatus.FAILED, time.time()
                self._save(record)
                run.notify(step)
                return
            lacking = lacking_files(definition, out_dirs)
            if lacking:
                raise StepFailed(f"step {node.name!r} " + "; ".join(lacking), hint="its script must write every file its spec declares")
            digests = {port: hash_tree(path) for port, path in out_dirs.items()}
            with writing("the cache entry", cache.root / parts.key):  # under the key's lock, an entry there is one should_run refused
                published = cache.publish(staged, parts, {port: d.digest for port, d in digests.items()}, replace=True)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)  # nothing half-written stays; checkpoints stay for a resume
            raise
        last_path = self.state.last_parts(run.pipeline.name, node.name)
        with writing("the step's last key parts", last_path):
            write_json_atomic(last_path, parts.as_dict())
        if checkpoints is not None:
            shutil.rmtree(checkpoints, ignore_errors=True)  # finished: nothing left to resume
        step.outputs = {
            port: {"path": str(published.output_dir(port)), "digest": d.digest, "files": d.count} for port, d in digests.items()
        }
        step.status, step.ended = StepStatus.DONE, time.time()
        self._save(record)
        run.notify(step)

    def _save(self, record: RunRecord) -> None:
        with self._lock, writing("the run record", self.state.runs / record.run_id):
            save_record(self.state.runs, record)


def record_dir(state: StateDir, record: RunRecord) -> Path:
    return state.runs / record.run_id


def _script_env(node: StepNode, env: Mapping[str, str], context: Mapping[str, str]) -> dict[str, str]:
    """The env a step's script sees (its contract's variables, defaults filled in) plus the run context."""
    contract, environ = node.definition.contract, {**os.environ, **env, **context}
    declared = {**dict.fromkeys(contract.required_env, ""), **contract.optional_env}
    return {**{name: environ.get(name, default) for name, default in declared.items()}, **context}


def _read_parts(path: Path) -> KeyParts | None:
    import json

    try:
        return KeyParts(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
