"""The built-in `workflow` implementation: runs a workflow template's steps (docs/workflows.md).

Each step's agent is built with `agent.spawn(name)`, i.e. by the factory that built the workflow
agent, so a step gets exactly what `factory.create_agent(name)` would give (its plugins, hooks,
sandbox policy) one level deeper. Steps run wave by wave (`core.workflow.plan`): a wave of one
step runs in the calling thread, a wider one in a thread pool of at most `max_parallel` threads.

The result is `{"output": <the output mapping>, "steps": [record, ...]}`, one record per step in
the order the steps are written: `{name, agent, version, status: ok|skipped|failed, duration_ms,
output|error}`. A step that fails fails the workflow with `StepFailed` naming it, once every step
of its wave has finished; its `trace` holds the records so far.

Invariants: importing this module imports nothing heavy (every command builds a plugin manager):
the model (pydantic, jsonpointer) is imported by the first workflow run. A template's parsed
workflow and plan are memoized by the template's content hash, so a warm run re-validates nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from core.errors import (
    AgentFactoryError,
    OrchestrationTooDeep,
    PluginError,
    StepFailed,
    WorkflowError,
)
from core.hookspecs import hookimpl

if TYPE_CHECKING:
    from core.agent import Agent
    from core.workflow import Plan, Step, Workflow

NAME = "workflow"
_MEMO_SIZE = 256
_memo: dict[str, tuple[Workflow, Plan]] = {}
_memo_lock = threading.Lock()


def compiled(agent: Agent) -> tuple[Workflow, Plan]:
    """The parsed workflow of `agent`'s template and its plan (memoized by content hash)."""
    template = agent.template
    found = _memo.get(template.hash)
    if found is not None:
        return found
    if template.workflow is None:
        raise PluginError(f"template {template.name!r} has implementation 'workflow' but no steps")
    from core.workflow import parse_workflow, plan

    workflow = parse_workflow(template.workflow)
    found = (workflow, plan(workflow))
    with _memo_lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[template.hash] = found
    return found


def _run_step(agent: Agent, step: Step, document: dict[str, Any]) -> dict[str, Any]:
    """The record of one step: skipped, ok (with its output) or failed (with its error).
    A mapping or condition that does not fit this run raises `WorkflowError`."""
    from core.workflow import build

    where = f"workflow {agent.name!r}: step {step.name!r}"
    if step.when is not None and not step.when.holds(document, f"{where}: when"):
        return {"name": step.name, "agent": step.agent, "version": None, "status": "skipped",
                "duration_ms": 0.0}
    task = build(step.input, document, f"{where}: input")
    if not isinstance(task, dict):
        raise WorkflowError(f"{where}: input must build a JSON object, not {type(task).__name__}")
    start = perf_counter()
    version = None
    try:
        child = agent.spawn(step.agent)
        version = child.template.version
        if not step.accepts(version):
            raise PluginError(f"{step.agent} {version} does not satisfy {step.version!r}")
        output = child.process(task)
    except OrchestrationTooDeep:
        raise  # one message, not one per level of a workflow that runs itself
    except Exception as exc:  # any failure of the step's agent is the step's failure
        error = str(exc) if isinstance(exc, AgentFactoryError | ValueError) else repr(exc)
        return {"name": step.name, "agent": step.agent, "version": version, "status": "failed",
                "duration_ms": _ms(start), "error": error}
    return {"name": step.name, "agent": step.agent, "version": version, "status": "ok",
            "duration_ms": _ms(start), "output": output}


def _ms(start: float) -> float:
    return round((perf_counter() - start) * 1000, 3)


def run(agent: Agent, task: dict[str, Any]) -> dict[str, Any]:
    """Run the workflow of `agent` on `task` (see the module doc)."""
    from core.workflow import build

    workflow, plan = compiled(agent)
    steps = workflow.steps
    document: dict[str, Any] = {"input": task, "steps": {}}
    records: dict[int, dict[str, Any]] = {}
    for wave in plan.waves:
        if len(wave) == 1:
            outcomes = [_run_step(agent, steps[wave[0]], document)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            width = min(len(wave), workflow.max_parallel)
            with ThreadPoolExecutor(width, thread_name_prefix=f"workflow-{agent.name}") as pool:
                outcomes = list(pool.map(lambda i: _run_step(agent, steps[i], document), wave))
        # Written only between waves: the steps of a wave read earlier waves, never each other.
        for index, record in zip(wave, outcomes, strict=True):
            records[index] = record
            entry = {"status": record["status"]}
            if "output" in record:
                entry["output"] = record["output"]
            document["steps"][record["name"]] = entry
        failed = next((records[i] for i in wave if records[i]["status"] == "failed"), None)
        if failed is not None:
            trace = tuple(records[i] for i in sorted(records))
            raise StepFailed(agent.name, failed["name"], failed["agent"], failed["error"], trace)
    output = build(workflow.output_mapping(), document, f"workflow {agent.name!r}: output")
    return {"output": output, "steps": [records[i] for i in range(len(steps))]}


@hookimpl
def agentfactory_implementations() -> Sequence[str]:
    return [NAME]


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    if agent.implementation != NAME:
        return None
    return run(agent, task)
