"""Supervisors (hierarchical orchestration): split a task, route each part by capability.

A supervisor template has implementation `supervisor` (`plugins/supervisor.py`) and its settings
in `parameters` (docs/workflows.md):

    "parameters": {
      "agents": ["genie_logiciel", "security_analyst", "documentaliste", "project_supervisor"],
      "routes": {"*.py": "code.python.structure", "*.env": "security.secrets"},
      "default_capability": "text.summarize",
      "failure_policy": "partial",
      "max_depth": 3
    }

A `Splitter` turns the task into `Subtask(id, capability, input)`s; the supervisor hands each one
to the first of its `agents` whose template declares that capability, or to the agent a subtask
names. Strategies (`parameters.strategy`): `deterministic` (`DeterministicSplitter`, routes by
file name) and `model` (`models.planner.ModelSplitter`: the template's `model` writes the plan,
each subtask naming one of the listed agents, checked against a JSON Schema; retried up to
`plan_attempts` answers).

Invariants:
- a supervisor only ever delegates to the agents its template lists (never to whatever happens to
  be installed), in the order listed;
- a part that is itself a bundle (a folder: `{"name": "docs/", "files": [...]}`) has capability
  `DELEGATE`, which supervisors declare: it goes to a supervisor one level deeper, and never past
  `max_depth` levels of agents;
- the deterministic strategy gives the same subtasks for the same task, in the same order; a
  model's plan names only listed agents (anything else is refused before any agent runs).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from core.errors import AgentInputError

IMPLEMENTATION = "supervisor"
DELEGATE = "orchestration.delegate"
"""The capability of a supervisor: taking a bundle of parts and delegating each one."""

FailurePolicy = Literal["fail_fast", "partial"]
POLICIES: tuple[FailurePolicy, ...] = ("fail_fast", "partial")
MAX_DEPTH_LIMIT = 8  # `Agent.spawn` refuses deeper anyway
MAX_PARTS = 256

DEFAULT_ROUTES: dict[str, str] = {
    "*.py": "code.python.structure",
    "*hardware*": "hardware.parse",
    "*.env": "security.secrets",
    ".env*": "security.secrets",
    "*.ini": "security.secrets",
    "*.cfg": "security.secrets",
    "*.conf": "security.secrets",
    "*.toml": "security.secrets",
    "*.yaml": "security.secrets",
    "*.yml": "security.secrets",
    "*.md": "text.summarize",
    "*.rst": "text.summarize",
    "*.txt": "text.summarize",
}
"""File-name patterns (`fnmatch`, on the lowercased base name) to capabilities; first match wins."""

SETTINGS = ("agents", "routes", "default_capability", "failure_policy", "max_depth", "strategy",
            "plan_attempts")
STRATEGIES = ("deterministic", "model")
MAX_PLAN_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What a splitter may know of a candidate agent."""

    name: str
    version: str
    capabilities: tuple[str, ...]
    description: str = ""

    @property
    def supervises(self) -> bool:
        return DELEGATE in self.capabilities


@dataclass(frozen=True, slots=True)
class Subtask:
    """One part of a task: `id` names it in the trace (a file name, a section title). `agent`,
    when set, is the listed agent it goes to (a model's plan names it); else `capability`
    routes it."""

    id: str
    capability: str
    input: dict[str, Any]
    agent: str | None = None


class Splitter(Protocol):
    """A strategy that splits a task into subtasks, each needing one capability."""

    def plan(self, task: dict[str, Any], agents: Sequence[AgentInfo]) -> list[Subtask]: ...


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """A supervisor template's `parameters`, checked (see `settings_problems`)."""

    agents: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]
    default_capability: str | None
    failure_policy: FailurePolicy
    max_depth: int
    strategy: str = "deterministic"
    plan_attempts: int = 3

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> SupervisorSettings:
        problems = settings_problems(parameters)
        if problems:
            raise ValueError("; ".join(problems))
        routes = parameters.get("routes", DEFAULT_ROUTES)
        return cls(
            agents=tuple(parameters["agents"]),
            routes=tuple(routes.items()),
            default_capability=parameters.get("default_capability"),
            failure_policy=parameters.get("failure_policy", "partial"),
            max_depth=parameters.get("max_depth", 3),
            strategy=parameters.get("strategy", "deterministic"),
            plan_attempts=parameters.get("plan_attempts", 3),
        )

    def splitter(self) -> Splitter:
        return DeterministicSplitter(self.routes, self.default_capability)


def settings_problems(parameters: Mapping[str, Any]) -> list[str]:
    """Why `parameters` cannot configure a supervisor (empty when they can)."""
    problems = [f"parameters.{key}: unknown supervisor setting (known: {', '.join(SETTINGS)})"
                for key in parameters if key not in SETTINGS]
    agents = parameters.get("agents")
    if not (isinstance(agents, list) and agents and all(isinstance(a, str) for a in agents)):
        problems.append("parameters.agents must list the names of the agents to delegate to")
    routes = parameters.get("routes", DEFAULT_ROUTES)
    if not (isinstance(routes, dict) and all(isinstance(v, str) for v in routes.values())):
        problems.append("parameters.routes must map file-name patterns to capabilities")
    default = parameters.get("default_capability")
    if default is not None and not isinstance(default, str):
        problems.append(f"parameters.default_capability must be a capability, not {default!r}")
    policy = parameters.get("failure_policy", "partial")
    if policy not in POLICIES:
        problems.append(f"parameters.failure_policy must be one of {', '.join(POLICIES)}, "
                        f"not {policy!r}")
    depth = parameters.get("max_depth", 3)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH_LIMIT:
        problems.append(f"parameters.max_depth must be an integer from 1 to {MAX_DEPTH_LIMIT}, "
                        f"not {depth!r}")
    if parameters.get("strategy", "deterministic") not in STRATEGIES:
        problems.append(f"parameters.strategy {parameters['strategy']!r} is not available "
                        f"(known: {', '.join(STRATEGIES)})")
    attempts = parameters.get("plan_attempts", 3)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or \
            not 1 <= attempts <= MAX_PLAN_ATTEMPTS:
        problems.append(f"parameters.plan_attempts must be an integer from 1 to "
                        f"{MAX_PLAN_ATTEMPTS}, not {attempts!r}")
    return problems


def route(capability: str, agents: Sequence[AgentInfo]) -> AgentInfo | None:
    """The first of `agents` that declares `capability`."""
    return next((agent for agent in agents if capability in agent.capabilities), None)


# ----------------------------------------------------------------- the deterministic splitter

_HEADING = re.compile(r" {0,3}#[ \t]+(.*?)[ \t#]*")  # a top-level ATX heading (fullmatch a line)
_FENCE = re.compile(r"\s{0,3}(```|~~~)")


def split_sections(text: str) -> list[tuple[str, str]]:
    """`(title, section text)` for each top-level (`# `) heading of a Markdown document, headings
    inside code fences excepted; text before the first heading is a section titled "preamble"."""
    sections: list[tuple[str, list[str]]] = [("preamble", [])]
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        opened = _FENCE.match(line)
        if opened:
            marker = opened.group(1)
            fence = None if fence == marker else fence or marker
        elif fence is None and (heading := _HEADING.fullmatch(line.rstrip("\r\n"))):
            sections.append((heading.group(1) or "untitled", []))
        sections[-1][1].append(line)
    return [(title, "".join(lines)) for title, lines in sections if "".join(lines).strip()]


class DeterministicSplitter:
    """Splits `{"files": [{"name", "content"} | {"name", "files"}]}` file by file, and a Markdown
    `{"text": ...}` section by section; each part's capability comes from `routes` (matched on
    the file's base name, or on a section's title), else `default_capability`."""

    def __init__(self, routes: Sequence[tuple[str, str]], default_capability: str | None) -> None:
        self.routes = tuple(routes)
        self.default_capability = default_capability

    def capability_for(self, name: str) -> str | None:
        base = name.rstrip("/").rsplit("/", 1)[-1].lower()
        for pattern, capability in self.routes:
            if fnmatch.fnmatchcase(base, pattern.lower()):
                return capability
        return self.default_capability

    def plan(self, task: dict[str, Any], agents: Sequence[AgentInfo]) -> list[Subtask]:
        if "files" in task:
            parts = [self._file(index, item) for index, item in enumerate(_files(task["files"]))]
        elif isinstance(task.get("text"), str):
            parts = [
                Subtask(title, self.capability_for(title) or self.default_capability or "",
                        {"text": body})
                for title, body in split_sections(task["text"])
            ]
        else:
            raise AgentInputError(
                "a supervisor's task holds 'files' ([{\"name\": ..., \"content\": ...}]) or a "
                "Markdown 'text'"
            )
        if len(parts) > MAX_PARTS:
            raise AgentInputError(f"a task splits into at most {MAX_PARTS} parts, not {len(parts)}")
        return parts

    def _file(self, index: int, item: dict[str, Any]) -> Subtask:
        name = item["name"]
        if "files" in item:  # a folder: a bundle of its own, for a supervisor
            return Subtask(name, DELEGATE, {"files": item["files"]})
        return Subtask(name, self.capability_for(name) or "", {"text": item["content"]})


def _files(value: Any) -> list[dict[str, Any]]:
    """`value` if it is a list of `{"name": str, "content": str}` or `{"name": str, "files":
    list}`; `AgentInputError` naming the first entry that is not."""
    if not isinstance(value, list):
        raise AgentInputError(f"task field 'files' must be a list, not {type(value).__name__}")
    for index, item in enumerate(value):
        where = f"task field 'files[{index}]'"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise AgentInputError(f"{where} must be an object with a 'name'")
        if isinstance(item.get("content"), str) == isinstance(item.get("files"), list):
            raise AgentInputError(f"{where} ({item['name']}) needs either a text 'content' or "
                                  "a list of 'files'")
    return value
