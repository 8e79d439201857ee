"""Errors of the agent factory.

`AgentFactoryError` is the root of every error the project raises on purpose; each subsystem
(`registry.errors`, `sandbox.errors`, `marketplace.client.errors`) derives its own small
hierarchy from it. The CLI prints any of them as one line and exits non-zero; the API turns them
into problem details. Every error carries the offending value as an attribute, not only in its
message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AgentFactoryError(Exception):
    """Root of the project's deliberate errors. `str(err)` is a complete one-line message."""


class TemplateError(AgentFactoryError):
    """A template could not be loaded, validated or resolved."""


class TemplateNotFound(TemplateError):
    """No template is named `name`. `chain` is the inheritance chain that asked for it (empty
    when it was asked for directly), `close` the known names closest to it, best first, and
    `hint` what the user can do about it (e.g. install the package that provides it)."""

    def __init__(
        self,
        name: str,
        chain: tuple[str, ...] = (),
        close: tuple[str, ...] = (),
        hint: str = "",
    ) -> None:
        self.name = name
        self.chain = chain
        self.close = close
        self.hint = hint
        where = f" (required by {' -> '.join(chain)})" if chain else ""
        suggestion = f"; {hint}" if hint else _suggest(close)
        super().__init__(f"template {name!r} not found{where}{suggestion}")


def describe_field_errors(source: str, errors: list[tuple[str, str]]) -> str:
    """`source: path: message; ...`, the one-line form of a document's field errors."""
    detail = "; ".join(f"{path}: {msg}" if path else msg for path, msg in errors)
    return f"{source}: {detail}"


class TemplateValidationError(TemplateError):
    """The document is not a valid template. `errors` holds `(field_path, message)` pairs."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(describe_field_errors(source, errors))


class InheritanceCycle(TemplateError):
    def __init__(self, chain: tuple[str, ...]) -> None:
        self.chain = chain
        super().__init__(f"template inheritance cycle: {' -> '.join(chain)}")


class TemplateVetoed(TemplateError):
    """A validator plugin refused the template. `reasons` lists every refusal."""

    def __init__(self, name: str, reasons: list[str]) -> None:
        self.name = name
        self.reasons = reasons
        super().__init__(f"template {name!r} refused: {'; '.join(reasons)}")


class PluginError(AgentFactoryError):
    """A plugin is missing, misbehaved or could not be registered."""


class NoImplementation(PluginError):
    def __init__(self, template: str, implementation: str) -> None:
        self.template = template
        self.implementation = implementation
        super().__init__(
            f"template {template!r} needs implementation {implementation!r}, "
            "which no registered plugin provides"
        )


class PackageVetoed(PluginError):
    """Plugins refused a package (`agentfactory_validate_package`).

    `vetoes` maps each refusing plugin's name to its reasons, in the order the plugins answered.
    """

    def __init__(self, name: str, version: str, vetoes: dict[str, list[str]]) -> None:
        self.name = name
        self.version = version
        self.vetoes = vetoes
        said = ", ".join(f"plugin {p!r}: {'; '.join(r)}" for p, r in vetoes.items())
        super().__init__(f"{name} {version} refused by {said}")


class BadContribution(PluginError):
    """A plugin answered a hook with something the hook does not accept."""

    def __init__(self, plugin: str, hook: str, value: object, expected: str) -> None:
        self.plugin = plugin
        self.hook = hook
        self.value = value
        super().__init__(
            f"plugin {plugin!r} answered {hook} with {value!r}, which is not {expected}"
        )


class AgentInputError(AgentFactoryError):
    """A task given to an agent is not what the agent accepts."""


class PluginLoadError(PluginError):
    """An entry-point plugin could not be imported or registered."""

    def __init__(self, name: str, target: str, reason: str) -> None:
        self.name = name
        self.target = target
        self.reason = reason
        super().__init__(f"plugin {name!r} ({target}) could not be loaded: {reason}")


class SettingsError(AgentFactoryError):
    """A factory setting has an impossible value. `field` names it as the operator wrote it,
    `value` holds it, `source` says where it came from (a config file, the environment)."""

    def __init__(self, field: str, value: object, reason: str, source: str | None = None) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid setting {field}={value!r}{where}: {reason}")


class ConfigFileError(AgentFactoryError):
    """The config file at `path` is missing (when named explicitly), unreadable or not TOML."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"config file {path}: {reason}")


def close_matches(name: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """The (at most three) `candidates` closest to `name`, best first."""
    return tuple(difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the closest of `candidates` to `name`, or an empty string."""
    return _suggest(close_matches(name, candidates))


def _suggest(close: Iterable[str]) -> str:
    close = list(close)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


class OrchestrationError(AgentFactoryError):
    """A workflow or a supervisor could not run to the end."""


class WorkflowError(OrchestrationError):
    """A workflow's mapping or condition does not fit the values of this run (a pointer to
    nothing, values that cannot be compared). The message names the workflow and the step."""


class StepFailed(OrchestrationError):
    """Step `step` of workflow `workflow`, run by agent `agent`, failed with `error`. `trace`
    holds the record of every step that had finished (the failed one last)."""

    def __init__(
        self, workflow: str, step: str, agent: str, error: str, trace: tuple[object, ...] = ()
    ) -> None:
        self.workflow = workflow
        self.step = step
        self.agent = agent
        self.error = error
        self.trace = trace
        super().__init__(f"workflow {workflow!r}: step {step!r} ({agent}) failed: {error}")


class SubtaskFailed(OrchestrationError):
    """Subtask `subtask` of supervisor `supervisor`, delegated to `agent` (None when no agent
    has the capability), failed with `error`; `trace` as for `StepFailed`."""

    def __init__(
        self,
        supervisor: str,
        subtask: str,
        agent: str | None,
        error: str,
        trace: tuple[object, ...] = (),
    ) -> None:
        self.supervisor = supervisor
        self.subtask = subtask
        self.agent = agent
        self.error = error
        self.trace = trace
        who = f" ({agent})" if agent else ""
        super().__init__(
            f"supervisor {supervisor!r}: subtask {subtask!r}{who} failed: {error}"
        )


class OrchestrationTooDeep(OrchestrationError):
    """Agent `agent` would be started `depth` levels below the first one; `limit` is the most."""

    def __init__(self, agent: str, depth: int, limit: int) -> None:
        self.agent = agent
        self.depth = depth
        self.limit = limit
        super().__init__(
            f"agent {agent!r} would run {depth} levels deep, over the limit of {limit} "
            "(does a workflow or supervisor call itself?)"
        )
