"""Errors of the model layer.

Every error a model call can end with is a `ModelError` (an `AgentFactoryError`), so the CLI
prints it as one line and the API as a problem. Each carries the offending figures as attributes
and has a stable `code` (`budget_exceeded`, `provider_error`, ...) that runs record.

Invariant: no message holds an API key. Provider errors are built from text that went through
`models.keys.scrub` first; the other errors never see a key at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import AgentFactoryError


class ModelError(AgentFactoryError):
    """Root of the model layer's errors."""

    code = "model_error"


class ModelsConfigError(ModelError):
    """The models configuration (`models.toml` or `[models]`) is wrong at `key` in `source`."""

    code = "models_config"

    def __init__(self, key: str, value: object, reason: str, source: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        self.source = source
        super().__init__(f"models setting {key}={value!r} in {source}: {reason}")


class NoProviderConfigured(ModelError):
    """A prompt agent asked for `model`, and no provider serves it."""

    code = "no_provider"

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"no language model is configured for {model!r}: add an alias to "
            "$AGENTFACTORY_HOME/models.toml (see docs/models.md), e.g. "
            f'[aliases.{_bare(model)}] models = ["openai:gpt-4o-mini"] with OPENAI_API_KEY set'
        )


def _bare(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else f'"{name}"'


class ModelNotAllowed(ModelError):
    """A caller asked for `model`, which its template does not declare (`allowed`)."""

    code = "model_not_allowed"

    def __init__(self, model: str, allowed: Sequence[str]) -> None:
        self.model = model
        self.allowed = tuple(allowed)
        super().__init__(
            f"model {model!r} is not declared by the template (declared: {', '.join(allowed)})"
        )


class ProviderError(ModelError):
    """Provider `provider` answered model `model` with an error (`status`, None when there
    was no HTTP answer). `detail` is already scrubbed of keys and cut short."""

    code = "provider_error"

    def __init__(self, provider: str, model: str, status: int | None, detail: str) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.detail = detail
        said = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"model {provider}:{model} failed ({said}): {detail}")

    @property
    def retryable(self) -> bool:
        """Worth another attempt on the same model: rate limited, a server error, no answer."""
        return self.status is None or self.status == 429 or self.status >= 500


class ModelTimeout(ProviderError):
    """Model `model` did not answer within `timeout_s`."""

    code = "model_timeout"

    def __init__(self, provider: str, model: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(provider, model, None, f"no answer within {timeout_s:g} s")
        self.args = (f"model {provider}:{model} did not answer within {timeout_s:g} s",)

    @property
    def retryable(self) -> bool:
        """A slow model is not asked again: the next model of the fallback list is."""
        return False


class MalformedResponse(ProviderError):
    """The provider answered, but not with a completion this layer can read."""

    code = "malformed_response"


class AllModelsFailed(ModelError):
    """Every model of an alias's fallback list failed; `failures` holds each one's error."""

    code = "all_models_failed"

    def __init__(self, alias: str, failures: Sequence[ProviderError]) -> None:
        self.alias = alias
        self.failures = tuple(failures)
        said = "; ".join(str(f) for f in failures)
        super().__init__(f"every model of {alias!r} failed: {said}")


class BudgetExceeded(ModelError):
    """Budget `budget` (e.g. `run.tokens`, `account_day.cost`) cannot take this call: `spent`
    already, `needed` more for it (an estimate before the call, the reported usage after),
    against `limit`. `unit` is `tokens` or `usd`."""

    code = "budget_exceeded"

    def __init__(
        self, budget: str, limit: float, spent: float, needed: float, unit: str, when: str
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.needed = needed
        self.unit = unit
        self.when = when
        super().__init__(
            f"budget_exceeded: {budget} is {_fig(limit, unit)}; {_fig(spent, unit)} spent, "
            f"this call {'needs' if when == 'before' else 'used'} {_fig(needed, unit)}"
        )


def _fig(value: float, unit: str) -> str:
    return f"{int(value):,} tokens" if unit == "tokens" else f"${value:.6f}".rstrip("0")


class DlpRefused(ModelError):
    """The DLP filter refused a call: the `direction` text (`prompt` or `output`) holds
    sensitive data of `kinds` (never the values)."""

    code = "dlp_refused"

    def __init__(self, direction: str, kinds: Sequence[str]) -> None:
        self.direction = direction
        self.kinds = tuple(kinds)
        super().__init__(
            f"DLP policy refused the {direction}: it contains {', '.join(kinds)}"
        )


class PromptFieldMissing(ModelError):
    """Prompt `prompt` of template `template` names `{field}`, which the task does not have."""

    code = "prompt_field_missing"

    def __init__(self, template: str, prompt: str, field: str, available: Sequence[str]) -> None:
        self.template = template
        self.prompt = prompt
        self.field = field
        self.available = tuple(available)
        have = ", ".join(available) or "none"
        super().__init__(
            f"{template}: prompt {prompt!r} needs task field {field!r} (the task has: {have})"
        )


class OutputInvalid(ModelError):
    """After `attempts` answers, the model's output still did not match the template's
    `output_schema`; `errors` lists what did not validate in the last one."""

    code = "output_invalid"

    def __init__(self, template: str, attempts: int, errors: Sequence[str]) -> None:
        self.template = template
        self.attempts = attempts
        self.errors = tuple(errors)
        super().__init__(
            f"{template}: the model's answer did not match output_schema after {attempts} "
            f"attempt(s): {'; '.join(errors)}"
        )


class PlanInvalid(ModelError):
    """The planning supervisor `supervisor` got no usable plan from its model after `attempts`
    answers; `errors` lists what was wrong with the last one (e.g. an agent it does not list)."""

    code = "plan_invalid"

    def __init__(self, supervisor: str, attempts: int, errors: Sequence[str]) -> None:
        self.supervisor = supervisor
        self.attempts = attempts
        self.errors = tuple(errors)
        super().__init__(
            f"supervisor {supervisor!r}: the model's plan was not valid after {attempts} "
            f"attempt(s): {'; '.join(errors)}"
        )
