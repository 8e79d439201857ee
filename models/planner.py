"""The planning supervisor's strategy: a language model splits a task into subtasks.

`ModelSplitter` implements `core.supervisor.Splitter` for `parameters.strategy: "model"`. It
tells the model (the supervisor template's `model`, through the gateway like every other call)
which agents it may use — name, capabilities, description — and asks for one JSON object:

    {"subtasks": [{"id": "summary", "agent": "documentaliste", "input": {"text": "..."}}]}

Invariants:

- the answer is validated against a JSON Schema built for this supervisor (`plan_schema`):
  `agent` is an enum of exactly the listed agents, `input` an object, `id`s non-empty and
  unique, 1 to `MAX_PARTS` subtasks; nothing else is accepted, so a plan can never route to
  an agent the supervisor does not list;
- an answer that is not JSON or does not match is sent back with what was wrong, up to
  `attempts` answers in all; then `PlanInvalid` lists the errors of the last one, and no agent
  has run;
- every call is the caller's (`models.context`): it counts against the run's budgets (a
  `budget_exceeded` ends the plan), passes the DLP filter and is audited, as the supervisor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from models.errors import PlanInvalid
from models.prompt_agent import _strip_fence  # the same leniency as prompt agents' JSON
from models.types import CompletionRequest, Message, Usage

if TYPE_CHECKING:
    from core.supervisor import AgentInfo, Subtask
    from models.gateway import ModelGateway
    from models.types import CallContext

MAX_SHOWN_ERRORS = 5
SYSTEM = (
    "You are the planner of a supervisor agent. Split the user's task into subtasks, each for "
    "exactly one of these agents, and give each the JSON input object it needs (the built-in "
    "text agents read the field \"text\"). Use only these agents:\n{agents}\n\n"
    "Answer with one JSON object and nothing else. It must match this JSON Schema: {schema}"
)


def plan_schema(agents: Sequence[AgentInfo]) -> dict[str, Any]:
    """The JSON Schema of a plan for a supervisor listing `agents`."""
    from core.supervisor import MAX_PARTS

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["subtasks"],
        "properties": {"subtasks": {
            "type": "array", "minItems": 1, "maxItems": MAX_PARTS,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "agent", "input"],
                "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 200},
                    "agent": {"enum": [agent.name for agent in agents]},
                    "input": {"type": "object"},
                },
            },
        }},
    }


class ModelSplitter:
    """`Splitter` whose plan a model writes (see the module doc). `usages` holds the usage of
    every planning call of the last `plan`."""

    def __init__(
        self, supervisor: str, model: str, gateway: ModelGateway, context: CallContext,
        attempts: int = 3, max_tokens: int | None = None, temperature: float | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.model = model
        self.gateway = gateway
        self.context = replace(context, agent=supervisor, allowed_models=(model,), on_token=None)
        self.attempts = attempts
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.usages: list[Usage] = []

    def plan(self, task: dict[str, Any], agents: Sequence[AgentInfo]) -> list[Subtask]:
        from jsonschema import Draft202012Validator

        schema = plan_schema(agents)
        validator = Draft202012Validator(schema)
        listing = "\n".join(
            f"- {a.name}: {a.description or 'no description'} (capabilities: "
            f"{', '.join(a.capabilities) or 'none'})" for a in agents
        )
        system = SYSTEM.format(agents=listing,
                               schema=json.dumps(schema, separators=(",", ":")))
        messages = [Message("system", system),
                    Message("user", json.dumps(task, ensure_ascii=False))]
        self.usages = []
        errors: list[str] = []
        for _attempt in range(self.attempts):
            completion = self.gateway.complete(CompletionRequest(
                self.model, tuple(messages), max_tokens=self.max_tokens,
                temperature=self.temperature, json_mode=True, context=self.context,
            ))
            self.usages.append(completion.usage)
            value, errors = _check(completion.text, validator)
            if not errors:
                return _subtasks(value, agents)
            messages += [Message("assistant", completion.text),
                         Message("user", "That plan is not valid: "
                                 f"{'; '.join(errors)}. Answer again with only the JSON.")]
        raise PlanInvalid(self.supervisor, self.attempts, errors)


def _check(text: str, validator: Any) -> tuple[Any, list[str]]:
    """The plan in `text` and what is wrong with it (nothing: a usable plan)."""
    try:
        value = json.loads(_strip_fence(text))
    except ValueError as exc:
        return None, [f"not JSON: {exc}"]
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ][:MAX_SHOWN_ERRORS]
    if not errors:
        ids = [item["id"] for item in value["subtasks"]]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            errors = [f"subtasks: ids must be unique ({', '.join(map(repr, twice))} repeat)"]
    return value, errors


def _subtasks(value: dict[str, Any], agents: Sequence[AgentInfo]) -> list[Subtask]:
    from core.supervisor import Subtask

    capabilities = {agent.name: agent.capabilities for agent in agents}
    return [
        Subtask(item["id"], (capabilities[item["agent"]] or ("",))[0], item["input"],
                agent=item["agent"])
        for item in value["subtasks"]
    ]
