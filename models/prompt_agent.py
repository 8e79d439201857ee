"""Prompt agents: a template's role, prompts and model, run through the gateway.

A template with `"implementation": "prompt"` is a prompt agent (`plugins/prompt.py` binds this
module to the hooks). Its messages:
- system: the template's `role`, then `prompts["system"]` (either may be absent);
- user: `prompts["user"]`, else `prompts["task"]`, else `"{text}"`;
each rendered with the task's fields (`models.render`). `model.name` is an alias of the
deployment's configuration or `provider:model`; `model.provider` prefixes a bare name that is
not an alias. Settings in `model.parameters`: `max_tokens`, `temperature`, `dlp` (off, mask,
refuse) and `output_attempts` (how many answers to ask for when `output_schema` is set; 3).

Result: `{"text": answer, "usage": {...}}`, or with `output_schema` `{"output": <JSON that
matches it>, "usage": {...}}`. A schema answer that is not JSON or does not match is asked for
again, with what was wrong, up to `output_attempts` times; then `OutputInvalid` lists the
errors. `usage` sums every call the task made (`calls` counts them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from models.errors import OutputInvalid
from models.render import placeholders, render
from models.types import DLP_POLICIES, CallContext, CompletionRequest, DlpPolicy, Message, Usage

if TYPE_CHECKING:
    from core.resolved import ResolvedTemplate
    from models.gateway import ModelGateway

NAME = "prompt"
DEFAULT_ATTEMPTS = 3
MAX_ATTEMPTS = 10
MAX_SHOWN_ERRORS = 5
PARAMETERS = ("max_tokens", "temperature", "dlp", "output_attempts")


@dataclass(frozen=True, slots=True)
class PromptSpec:
    template: str
    model: str
    system: str
    user: str
    output_schema: dict[str, Any] | None
    max_tokens: int | None
    temperature: float | None
    dlp: DlpPolicy | None
    attempts: int


def model_name(template: ResolvedTemplate) -> str:
    """What the template asks the gateway for (an alias or `provider:model`)."""
    name, provider = template.model.name, template.model.provider
    if ":" in name or provider in ("", "local"):
        return name
    return f"{provider}:{name}"


def spec_of(template: ResolvedTemplate) -> PromptSpec:
    prompts, params = template.prompts, template.model.parameters
    system = "\n\n".join(p for p in (template.role, prompts.get("system", "")) if p)
    return PromptSpec(
        template=template.name,
        model=model_name(template),
        system=system,
        user=prompts.get("user") or prompts.get("task") or "{text}",
        output_schema=template.output_schema,
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        dlp=params.get("dlp"),
        attempts=params.get("output_attempts", DEFAULT_ATTEMPTS),
    )


def problems(template: ResolvedTemplate) -> list[str]:
    """Why `template` cannot be a prompt agent (empty when it can)."""
    found = []
    params = template.model.parameters
    for key in ("system", "user", "task"):
        text = template.prompts.get(key)
        if text is not None:
            try:
                placeholders(text)
            except ValueError as exc:
                found.append(f"prompts.{key}: {exc}")
    if not template.model.name or template.model.name == "deterministic":
        found.append("model.name must name a model alias or 'provider:model'")
    for key in ("max_tokens", "output_attempts"):
        value = params.get(key)
        limit = MAX_ATTEMPTS if key == "output_attempts" else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1 or (limit is not None and value > limit)):
            bound = f" at most {limit}" if limit else ""
            found.append(f"model.parameters.{key} must be a positive integer{bound}, "
                         f"not {value!r}")
    temperature = params.get("temperature")
    if temperature is not None and (isinstance(temperature, bool)
                                    or not isinstance(temperature, int | float)):
        found.append(f"model.parameters.temperature must be a number, not {temperature!r}")
    if params.get("dlp") is not None and params["dlp"] not in DLP_POLICIES:
        found.append(f"model.parameters.dlp must be one of {', '.join(DLP_POLICIES)}, "
                     f"not {params['dlp']!r}")
    if template.output_schema is not None:
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(template.output_schema)
        except SchemaError as exc:
            found.append(f"output_schema is not a valid JSON Schema: {exc.message}")
    return found


def run(
    spec: PromptSpec, task: Mapping[str, Any], gateway: ModelGateway, base: CallContext
) -> dict[str, Any]:
    """Process `task` (see the module doc)."""
    user = render(spec.user, task, spec.template, "user")
    system = render(spec.system, task, spec.template, "system") if spec.system else ""
    context = replace(base, agent=spec.template, allowed_models=(spec.model,), dlp=spec.dlp)
    if spec.output_schema is None:
        messages = _messages(system, user)
        completion = gateway.complete(_request(spec, messages, context, json_mode=False))
        return {"text": completion.text, "usage": _usage([completion.usage])}
    return _structured(spec, system, user, gateway, context)


def _structured(
    spec: PromptSpec, system: str, user: str, gateway: ModelGateway, context: CallContext
) -> dict[str, Any]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(spec.output_schema or {})
    schema = json.dumps(spec.output_schema, separators=(",", ":"))
    system = "\n\n".join(p for p in (system, (
        "Answer with one JSON value and nothing else. It must match this JSON Schema: "
        f"{schema}")) if p)
    messages = list(_messages(system, user))
    usages: list[Usage] = []
    errors: list[str] = []
    for _attempt in range(spec.attempts):
        completion = gateway.complete(_request(spec, tuple(messages), context, json_mode=True))
        usages.append(completion.usage)
        try:
            value = json.loads(_strip_fence(completion.text))
        except ValueError as exc:
            errors = [f"not JSON: {exc}"]
        else:
            errors = [
                f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(value), key=lambda e: list(e.path))
            ][:MAX_SHOWN_ERRORS]
            if not errors:
                return {"output": value, "usage": _usage(usages)}
        messages += [Message("assistant", completion.text),
                     Message("user", "That answer does not match the schema: "
                             f"{'; '.join(errors)}. Answer again with only the JSON.")]
    raise OutputInvalid(spec.template, spec.attempts, errors)


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence: take what is inside."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped[3:-3]
        first, _, rest = stripped.partition("\n")
        return rest if first.strip().isalpha() else stripped
    return stripped


def _messages(system: str, user: str) -> tuple[Message, ...]:
    return ((Message("system", system),) if system else ()) + (Message("user", user),)


def _request(
    spec: PromptSpec, messages: tuple[Message, ...], context: CallContext, *, json_mode: bool
) -> CompletionRequest:
    return CompletionRequest(spec.model, messages, max_tokens=spec.max_tokens,
                             temperature=spec.temperature, json_mode=json_mode,
                             context=context)


def _usage(usages: list[Usage]) -> dict[str, Any]:
    last = usages[-1]
    return {
        "input_tokens": sum(u.input_tokens for u in usages),
        "output_tokens": sum(u.output_tokens for u in usages),
        "cost": sum(u.cost for u in usages),
        "model": last.model,
        "provider": last.provider,
        "latency_ms": round(sum(u.latency_ms for u in usages), 3),
        "calls": len(usages),
    }
