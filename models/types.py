"""The records that cross the model layer: a request in, a completion (text + usage) out.

They are plain frozen dataclasses so the callers that plug in later (the sandbox's host import,
the planning supervisor, runs) build and read them without pydantic. `CallContext` says who is
spending (account, agent, run) and carries the callbacks a caller wants: `on_token` for streaming
and `on_usage` for accounting (runs add each call's usage to the run's record).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
DlpPolicy = Literal["off", "mask", "refuse"]
DLP_POLICIES: tuple[DlpPolicy, ...] = ("off", "mask", "refuse")  # least strict first

LOCAL_ACCOUNT = "local"
"""The account of calls made from a user's own machine (the CLI, a library)."""


def server_account(publisher_id: int) -> str:
    """The account of calls made on the marketplace for publisher `publisher_id` (the same key
    as the server's per-account rate limits)."""
    return f"account:{publisher_id}"


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    """What one call cost. `estimated` is true when the provider reported no token counts and
    they were estimated from the text (4 characters a token)."""

    input_tokens: int
    output_tokens: int
    cost: float  # USD, from the price table (0 for a model without a price)
    model: str
    provider: str
    latency_ms: float
    estimated: bool = False

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "model": self.model,
            "provider": self.provider,
            "latency_ms": round(self.latency_ms, 3),
        }


TokenCallback = Callable[[str], None]
UsageCallback = Callable[[Usage], None]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who a call is for. `allowed_models` (aliases or model ids) limits what may be asked for;
    empty allows any. `dlp` is the template's DLP policy (the stricter of it and the
    deployment's applies)."""

    account: str = LOCAL_ACCOUNT
    agent: str = ""
    run_id: str | None = None
    allowed_models: tuple[str, ...] = ()
    dlp: DlpPolicy | None = None
    on_token: TokenCallback | None = None
    on_usage: UsageCallback | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One call: `model` is an alias of the configuration or a model id (`provider:model`)."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    json_mode: bool = False  # ask the provider for a JSON object
    context: CallContext = field(default_factory=CallContext)
    options: Mapping[str, Any] = field(default_factory=dict)  # passed through to the provider
    # The caller's remaining time (a sandboxed task's deadline): no attempt, retry or wait of
    # the call outlasts it; None: only the configured per-attempt timeout applies.
    timeout_s: float | None = None

    @property
    def text(self) -> str:
        return "\n".join(m.content for m in self.messages)


@dataclass(frozen=True, slots=True)
class Completion:
    """A model's answer, after the output filter. `masked` names the kinds of sensitive data
    the DLP filter masked in it (prompt and output)."""

    text: str
    usage: Usage
    masked: tuple[str, ...] = ()
