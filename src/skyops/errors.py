"""Domain errors. The CLI prints these as one line plus a hint, never a traceback.

Every error says what went wrong, where, what was expected, and how to fix it. Unexpected
exceptions (bugs) are not `SkyopsError` and keep their traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class SkyopsError(Exception):
    """Base of every error skyops raises on purpose.

    Attributes:
        hint: one sentence telling the user how to fix it ('' when there is nothing to add).
        exit_code: 2 for usage/config errors (the default), 1 for failures while running.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.problems: list[str] = [message]


class CommandLineError(SkyopsError):
    """The command line itself is wrong: an unknown command or option, a missing or ill-typed value."""


class ConfigError(SkyopsError):
    """A setting, parameter or config value is missing or has the wrong type or range."""


class SpecError(SkyopsError):
    """A step specification is malformed (ports, kinds, node type)."""


class ContractError(SkyopsError):
    """A script contract is malformed, or a script was run without what its contract declares."""


class PipelineError(SkyopsError):
    """A pipeline definition is invalid (unknown step, bad YAML, cycle, bad parameter)."""


class CheckError(SkyopsError):
    """The static alignment check found problems between the four layers of a step."""


class DataValidationError(SkyopsError):
    """Input data failed validation (unreadable images, bad labels, unknown format)."""


class ExportCheckError(SkyopsError):
    """An exported model does not predict what the model it was made from predicts (the export step's check)."""

    exit_code = 1


class StateFileError(SkyopsError):
    """A file skyops keeps for itself (a pointer, a record, a step's result) is unreadable, of the wrong
    shape, or names something that no longer exists. The message names the file; the hint, the way back."""


class PermissionDenied(SkyopsError):
    """The acting user's role does not allow the action."""


class AwsGuardError(SkyopsError):
    """The AWS session guard refused before any request (profile, region, credentials)."""


class StepFailed(SkyopsError):
    """A pipeline step exited non-zero; the run can be resumed by running again."""

    exit_code = 1


class StateError(SkyopsError):
    """The state folder cannot take a write: full disk, quota, read-only, permission denied."""

    exit_code = 1


class RunInterrupted(SkyopsError):
    """A run was stopped by a signal (Ctrl-C, SIGTERM); its record ends "killed"."""

    def __init__(self, message: str, *, signal_number: int, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.exit_code = 128 + signal_number  # what a shell reports for a process ended by that signal


def problems_error(cls: type[SkyopsError], subject: str, problems: Iterable[str], *, hint: str = "") -> SkyopsError:
    """Build one error that lists every problem, sorted: "3 problems in pipeline 'x':\n  - ..."."""
    unique = sorted(set(problems))
    noun = "problem" if len(unique) == 1 else "problems"
    body = "\n".join(f"  - {p}" for p in unique)
    error = cls(f"{len(unique)} {noun} in {subject}:\n{body}", hint=hint)
    error.problems = unique
    return error
