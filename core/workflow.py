"""Workflows: a template whose agent runs other agents as named steps (flat orchestration).

A template with a `workflow` field is served by the built-in `workflow` implementation
(`plugins/workflow.py`). The format, documented for users in docs/workflows.md:

    "workflow": {
      "steps": [
        {"name": "mask", "agent": "security_analyst", "version": ">=1.0",
         "input": {"text": {"from": "/input/text"}}},
        {"name": "summarize", "agent": "documentaliste",
         "input": {"text": {"from": "/steps/mask/output/masked_text"}},
         "when": {"path": "/steps/mask/output/masked_text", "op": "exists"}}
      ],
      "output": {"summary": {"from": "/steps/summarize/output/summary"}}
    }

- A step runs after the step written before it, unless it says `after` (a list of step names;
  `[]` starts it at once). It also runs after every step whose output it reads. Steps that do not
  depend on each other run in parallel, at most `max_parallel` at a time.
- Inputs and the output are *mappings*: plain JSON is a literal; `{"from": POINTER}` (optionally
  with `"default"`) is the value at that RFC 6901 pointer of the run's document
  `{"input": <task>, "steps": {NAME: {"status": ..., "output": ...}}}`; `{"literal": VALUE}`
  is VALUE as is (for an object that has a `from` key of its own). Nothing is ever evaluated.
- `when` skips the step unless `op` holds for the value at `path`.

Invariants of a `Workflow` that validated:
- at most `LIMITS.steps` steps, with unique names; each mapping at most `LIMITS.mapping_depth`
  levels deep and `LIMITS.mapping_nodes` values in all; pointers at most `LIMITS.pointer_chars`;
- every pointer is well formed and reads `/input...` or `/steps/<a step of this workflow>...`;
- the graph of `after` and pointer dependencies has no cycle (a cycle is refused naming it);
- `plan()` lists the steps in waves: every step's dependencies are in earlier waves.
Whether each step's agent exists is checked when the template is resolved (`check_agents`,
called by `core.inheritance.resolve`) and when a package is published (`registry.workflows`).
"""

from __future__ import annotations

import copy
import graphlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from jsonpointer import EndOfList, JsonPointer, JsonPointerException
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import WorkflowError

IMPLEMENTATION = "workflow"
"""The implementation of every workflow template."""


@dataclass(frozen=True, slots=True)
class WorkflowLimits:
    """Bounds on a workflow document: a template is data from strangers, so nothing is open."""

    steps: int = 64
    parallel: int = 16  # the highest `max_parallel` a workflow may ask for
    mapping_depth: int = 16
    mapping_nodes: int = 2_000
    pointer_chars: int = 512


LIMITS = WorkflowLimits()

STEP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # used with fullmatch
Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "exists", "not_exists", "in", "contains"]
_UNARY = ("exists", "not_exists")
_ORDERED = ("gt", "ge", "lt", "le")
_MISSING = object()


# ----------------------------------------------------------------- pointers and mappings


def parse_pointer(text: Any) -> JsonPointer:
    """`text` as an RFC 6901 pointer; ValueError naming the problem."""
    if not isinstance(text, str):
        raise ValueError(f"a pointer must be a string, not {type(text).__name__}")
    if len(text) > LIMITS.pointer_chars:
        raise ValueError(f"pointer longer than {LIMITS.pointer_chars} characters")
    try:
        return JsonPointer(text)
    except JsonPointerException as exc:
        raise ValueError(f"{text!r} is not a JSON pointer ({exc})") from None


def _is_reference(node: dict[str, Any]) -> bool:
    return "from" in node


def references(mapping: Any) -> Iterator[str]:
    """Every pointer a (validated) mapping reads, in document order."""
    stack = [mapping]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if _is_reference(node):
                yield node["from"]
            elif "literal" not in node or len(node) != 1:
                stack.extend(reversed(node.values()))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def check_mapping(mapping: Any) -> Any:
    """`mapping` if it is within the bounds and every reference is well formed; else ValueError.

    Iterative, so a hostile document nested thousands deep is refused, not a RecursionError."""
    nodes = 0
    # (value, depth, inside a literal: counted against the bounds, never read as a reference)
    stack: list[tuple[Any, int, bool]] = [(mapping, 1, False)]
    while stack:
        node, depth, literal = stack.pop()
        nodes += 1
        if nodes > LIMITS.mapping_nodes:
            raise ValueError(f"a mapping may hold at most {LIMITS.mapping_nodes} values")
        if depth > LIMITS.mapping_depth:
            raise ValueError(f"a mapping may be at most {LIMITS.mapping_depth} levels deep")
        if isinstance(node, dict):
            if not literal and _is_reference(node):
                extra = set(node) - {"from", "default"}
                if extra:
                    raise ValueError(
                        f"a reference holds 'from' and an optional 'default', not {sorted(extra)}"
                    )
                parse_pointer(node["from"])
                if "default" in node:
                    stack.append((node["default"], depth + 1, False))
            elif not literal and "literal" in node and len(node) == 1:
                stack.append((node["literal"], depth + 1, True))
            else:
                stack.extend((value, depth + 1, literal) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1, literal) for value in node)
    return mapping


def lookup(document: Any, pointer: str) -> Any:
    """The value at `pointer` in `document`, or `_MISSING`."""
    value = JsonPointer(pointer).resolve(document, _MISSING)
    return _MISSING if isinstance(value, EndOfList) else value


def build(mapping: Any, document: Any, where: str) -> Any:
    """The value of `mapping` over the run's `document`; `WorkflowError` for a reference to
    nothing without a default. Values read are copied: a step never shares another's output."""
    if isinstance(mapping, dict):
        if _is_reference(mapping):
            value = lookup(document, mapping["from"])
            if value is _MISSING:
                if "default" in mapping:
                    return build(mapping["default"], document, where)
                raise WorkflowError(f"{where}: {mapping['from']} points to nothing")
            return copy.deepcopy(value)
        if "literal" in mapping and len(mapping) == 1:
            return copy.deepcopy(mapping["literal"])
        return {key: build(value, document, where) for key, value in mapping.items()}
    if isinstance(mapping, list):
        return [build(value, document, where) for value in mapping]
    return mapping


# ----------------------------------------------------------------- the model


class Condition(BaseModel):
    """Run the step only if `op` holds for the value at `path` (see `holds`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    op: Op
    value: Any = None

    @field_validator("path")
    @classmethod
    def _pointer(cls, value: str) -> str:
        parse_pointer(value)
        return value

    @model_validator(mode="after")
    def _operand(self) -> Condition:
        if self.op in _UNARY and self.value is not None:
            raise ValueError(f"op {self.op!r} takes no value")
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("op 'in' needs a list value")
        if self.op in _ORDERED and not _orderable(self.value):
            raise ValueError(f"op {self.op!r} needs a number or a string value")
        return self

    def holds(self, document: Any, where: str) -> bool:
        """Whether the step runs. A value that is not there satisfies only `not_exists`."""
        actual = lookup(document, self.path)
        if actual is _MISSING:
            return self.op == "not_exists"
        op, value = self.op, self.value
        if op in _UNARY:
            return op == "exists"
        if op == "eq":
            return bool(actual == value)
        if op == "ne":
            return bool(actual != value)
        if op == "in":
            return bool(actual in value)
        if op == "contains":
            if isinstance(actual, list) or (
                isinstance(actual, str | dict) and isinstance(value, str)
            ):
                return value in actual
            raise WorkflowError(f"{where}: {self.path} holds {_kind(actual)}; "
                                f"'contains' {value!r} needs text, a list or an object")
        if not _orderable(actual) or isinstance(actual, str) != isinstance(value, str):
            raise WorkflowError(f"{where}: cannot compare {self.path} ({_kind(actual)}) "
                                f"with {value!r} ({op})")
        return bool(
            {"gt": actual > value, "ge": actual >= value, "lt": actual < value,
             "le": actual <= value}[op]
        )


class Step(BaseModel):
    """One step: an agent, the input it is given, when it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Unique in the workflow: [a-z0-9][a-z0-9_-]*, 64 at most.")
    agent: str = Field(description="Name of the template (agent) this step runs.")
    version: str | None = Field(
        default=None, description="PEP 440 specifier the agent's version must satisfy."
    )
    after: list[str] | None = Field(
        default=None,
        description="Steps this one runs after; default: the step written before it.",
    )
    input: Any = Field(
        default_factory=lambda: {"from": "/input"},
        description="Mapping that builds the step's task; default: the run's input.",
    )
    when: Condition | None = Field(default=None, description="Skip the step unless this holds.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not STEP_NAME.fullmatch(value):
            raise ValueError(f"step name {value!r} must match [a-z0-9][a-z0-9_-]*, 64 at most")
        return value

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str) -> str:
        from core.template import check_name

        return check_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier:
                raise ValueError(f"{value!r} is not a version specifier (e.g. '>=1,<2')") from None
        return value

    @field_validator("input")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return check_mapping(value)

    def accepts(self, version: str) -> bool:
        """Whether the agent `version` satisfies this step's specifier (pre-releases count)."""
        if self.version is None:
            return True
        try:
            return SpecifierSet(self.version).contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False


class Workflow(BaseModel):
    """The steps of a workflow and its output mapping. See the module doc."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[Step] = Field(min_length=1)
    output: Any = Field(
        default=None, description="Mapping that builds the result; default: the last step's output."
    )
    max_parallel: int = Field(
        default=4, ge=1, le=LIMITS.parallel, description="Steps that may run at the same time."
    )

    @model_validator(mode="before")
    @classmethod
    def _few_steps(cls, data: Any) -> Any:
        # Before the steps are validated one by one: 10,000 steps are refused at once.
        steps = data.get("steps") if isinstance(data, dict) else None
        if isinstance(steps, list) and len(steps) > LIMITS.steps:
            raise ValueError(f"a workflow has at most {LIMITS.steps} steps, not {len(steps)}")
        return data

    @field_validator("output")
    @classmethod
    def _output(cls, value: Any) -> Any:
        return check_mapping(value)

    @model_validator(mode="after")
    def _graph(self) -> Workflow:
        plan(self)  # unknown steps, bad pointers and cycles raise ValueError here
        return self

    def output_mapping(self) -> Any:
        if self.output is None:
            return {"from": f"/steps/{self.steps[-1].name}/output"}
        return self.output


def _orderable(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


# ----------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Plan:
    """The order a workflow runs in: waves of step indexes (each wave after all earlier ones),
    and the steps each step depends on."""

    waves: tuple[tuple[int, ...], ...]
    depends: tuple[frozenset[str], ...]


def _step_of(pointer: str, names: set[str], where: str) -> str | None:
    """The step `pointer` reads (None for `/input...`); ValueError for any other root."""
    parts = JsonPointer(pointer).parts
    if parts and parts[0] == "input":
        return None
    if len(parts) >= 2 and parts[0] == "steps":
        if parts[1] not in names:
            raise ValueError(f"{where}: {pointer} names unknown step {parts[1]!r}")
        if len(parts) >= 3 and parts[2] not in ("output", "status"):
            raise ValueError(f"{where}: {pointer}: a step has only 'output' and 'status'")
        return parts[1]
    raise ValueError(f"{where}: {pointer} must start with /input or /steps/<step>")


def plan(workflow: Workflow) -> Plan:
    """The waves of `workflow`; ValueError naming an unknown step, a bad pointer or a cycle."""
    names: set[str] = set()
    for step in workflow.steps:
        if step.name in names:
            raise ValueError(f"step name {step.name!r} is used twice")
        names.add(step.name)
    depends: list[frozenset[str]] = []
    for index, step in enumerate(workflow.steps):
        where = f"step {step.name!r}"
        if step.after is None:
            needs = {workflow.steps[index - 1].name} if index else set()
        else:
            unknown = [name for name in step.after if name not in names]
            if unknown:
                raise ValueError(f"{where}: after: unknown step {unknown[0]!r}")
            needs = set(step.after)
        pointers = list(references(step.input))
        if step.when is not None:
            pointers.append(step.when.path)
        for pointer in pointers:
            read = _step_of(pointer, names, where)
            if read is not None:
                needs.add(read)
        depends.append(frozenset(needs))
    for pointer in references(workflow.output):
        _step_of(pointer, names, "output")
    sorter = graphlib.TopologicalSorter(
        {step.name: depends[i] for i, step in enumerate(workflow.steps)}
    )
    order = {step.name: i for i, step in enumerate(workflow.steps)}
    waves: list[tuple[int, ...]] = []
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        raise ValueError(
            f"steps form a cycle: {' -> '.join(cycle)} (through 'after' or 'from' references)"
        ) from None
    while sorter.is_active():
        ready = sorted(order[name] for name in sorter.get_ready())
        waves.append(tuple(ready))
        sorter.done(*(workflow.steps[i].name for i in ready))
    return Plan(tuple(waves), tuple(depends))


# ----------------------------------------------------------------- agents the steps name


Known = Callable[[str], "tuple[str | None, Workflow | None] | None"]
"""For an agent name: None when nobody provides it, else its version (None when it cannot be
known, e.g. a package required but not at hand) and its workflow (None for a plain agent)."""


def agent_problems(workflow: Workflow, known: Known, own_name: str) -> list[tuple[str, str]]:
    """`(field path, message)` for each step whose agent nobody provides or whose version is
    outside the step's specifier, and for a chain of workflows that comes back to `own_name`."""
    problems = []
    for index, step in enumerate(workflow.steps):
        where = f"workflow.steps[{index}].agent"
        record = known(step.agent)
        if record is None:
            problems.append((where, f"step {step.name!r}: no agent named {step.agent!r}"))
            continue
        version, _ = record
        if version is not None and not step.accepts(version):
            problems.append((where, f"step {step.name!r}: {step.agent} {version} does not "
                             f"satisfy {step.version!r}"))
        cycle = _cycle_through(step.agent, known, own_name)
        if cycle:
            chain = " -> ".join([own_name, *cycle])
            problems.append((where, f"step {step.name!r}: workflows call each other: {chain}"))
    return problems


def _cycle_through(agent: str, known: Known, own_name: str) -> list[str]:
    """The chain of step agents from `agent` back to `own_name`, or [] (depth-first)."""
    stack: list[tuple[str, list[str]]] = [(agent, [agent])]
    seen: set[str] = set()
    while stack:
        name, chain = stack.pop()
        if name == own_name:
            return chain
        if name in seen:
            continue
        seen.add(name)
        record = known(name)
        if record is not None and record[1] is not None:
            stack.extend((step.agent, [*chain, step.agent]) for step in record[1].steps)
    return []


def parse_workflow(document: Any) -> Workflow:
    """A resolved template's `workflow` document as a `Workflow` (it validated when loaded)."""
    return Workflow.model_validate(document)
