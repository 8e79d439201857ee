"""The built-in `supervisor` implementation: split a task, delegate each part by capability.

The supervisor builds each of the agents its template lists with `agent.spawn` (the factory that
built it, one level deeper), asks its splitter (`core.supervisor`; with `strategy: "model"`,
`models.planner`, the template's model writing the plan) for subtasks, and hands each subtask
to the agent it names, else to the first listed agent that declares the subtask's capability.
A part that is itself a bundle goes to a listed supervisor, while the nesting stays within
`max_depth` levels.

The result is `{"status": "ok"|"partial", "answer": {subtask id: output}, "trace": [record]}`,
one record per subtask in order: `{subtask, capability, agent, version, depth, status: ok|failed,
duration_ms, output|error}`. A nested supervisor's output carries its own trace, so the whole
tree of who did what is in the answer. Under `failure_policy: "fail_fast"` the first failure
raises `SubtaskFailed` naming the subtask; under `"partial"` it is recorded and the others run.

Invariants: importing this module imports nothing but the hook marker; a template's settings are
checked when it is loaded (`agentfactory_validate_template`), so a typo is a refusal, not a
supervisor that silently routes nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from core.errors import AgentFactoryError, OrchestrationTooDeep, SubtaskFailed
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.resolved import ResolvedTemplate
    from core.supervisor import AgentInfo, Splitter, Subtask, SupervisorSettings

NAME = "supervisor"


def _delegate(
    agent: Agent,
    settings: SupervisorSettings,
    subtask: Subtask,
    candidates: dict[str, tuple[AgentInfo, Agent]],
) -> dict[str, Any]:
    from core.supervisor import route

    record: dict[str, Any] = {"subtask": subtask.id, "capability": subtask.capability,
                              "agent": None, "version": None, "depth": agent.depth + 1}
    start = perf_counter()
    if subtask.agent is not None:  # a model's plan names the agent (one it lists: checked)
        chosen: AgentInfo | None = candidates[subtask.agent][0]
    else:
        chosen = route(subtask.capability, [info for info, _ in candidates.values()])
    if chosen is None:
        error = f"no agent of this supervisor has capability {subtask.capability!r}"
        if not subtask.capability:
            error = f"no route for {subtask.id!r} (no pattern of parameters.routes matches)"
        return {**record, "status": "failed", "duration_ms": 0.0, "error": error}
    record.update(agent=chosen.name, version=chosen.version)
    if chosen.supervises and agent.depth + 1 >= settings.max_depth:
        error = (f"delegating to supervisor {chosen.name!r} would go past max_depth "
                 f"{settings.max_depth}")
        return {**record, "status": "failed", "duration_ms": 0.0, "error": error}
    try:
        output = candidates[chosen.name][1].process(subtask.input)
    except OrchestrationTooDeep:
        raise
    except Exception as exc:  # any failure of the delegate is this subtask's failure
        error = str(exc) if isinstance(exc, AgentFactoryError | ValueError) else repr(exc)
        return {**record, "status": "failed", "duration_ms": _ms(start), "error": error}
    return {**record, "status": "ok", "duration_ms": _ms(start), "output": output}


def _ms(start: float) -> float:
    return round((perf_counter() - start) * 1000, 3)


def run(agent: Agent, task: dict[str, Any]) -> dict[str, Any]:
    """Split `task`, delegate each part, gather the answers (see the module doc)."""
    from core.supervisor import AgentInfo, SupervisorSettings

    settings = SupervisorSettings.from_parameters(agent.template.parameters)
    candidates: dict[str, tuple[AgentInfo, Agent]] = {}
    for name in settings.agents:
        child = agent.spawn(name)
        info = AgentInfo(name, child.template.version, tuple(child.template.capabilities),
                         child.template.description)
        candidates[name] = (info, child)
    subtasks = _splitter(agent, settings).plan(task, [info for info, _ in candidates.values()])
    trace = []
    answer = {}
    for subtask in subtasks:
        record = _delegate(agent, settings, subtask, candidates)
        trace.append(record)
        if record["status"] == "ok":
            answer[subtask.id] = record["output"]
        elif settings.failure_policy == "fail_fast":
            raise SubtaskFailed(agent.name, subtask.id, record["agent"], record["error"],
                                tuple(trace))
    status = "ok" if len(answer) == len(subtasks) else "partial"
    return {"status": status, "answer": answer, "trace": trace}


def _splitter(agent: Agent, settings: SupervisorSettings) -> Splitter:
    """The strategy of `settings`: a model's plan (`models.planner`) or the file routes."""
    if settings.strategy != "model":
        return settings.splitter()
    from models.context import current_context, current_gateway
    from models.planner import ModelSplitter
    from models.prompt_agent import model_name

    params = agent.template.model.parameters
    return ModelSplitter(
        agent.name, model_name(agent.template), current_gateway(), current_context(),
        attempts=settings.plan_attempts, max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
    )


@hookimpl
def agentfactory_implementations() -> Sequence[str]:
    return [NAME]


@hookimpl
def agentfactory_validate_template(
    template: ResolvedTemplate, settings: FactorySettings
) -> Sequence[str]:
    if (template.implementation or template.name) != NAME:
        return []
    from core.supervisor import settings_problems

    problems = settings_problems(template.parameters)
    if template.parameters.get("strategy") == "model" and \
            template.model.name in ("", "deterministic"):
        problems.append("parameters.strategy 'model' needs the template's model.name: a model "
                        "alias or 'provider:model' to write the plan")
    return problems


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    if agent.implementation != NAME:
        return None
    return run(agent, task)
