"""The provider layer: one model call through Simon Willison's `llm` library.

`llm` knows the providers: its built-in OpenAI client (which also speaks to any OpenAI-compatible
server given an `api_base`: vLLM, llama.cpp's server, Ollama, LM Studio...) and every provider
plugin installed beside it (`llm-anthropic`, `llm-gemini`, `llm-ollama`, ...), found through its
own pluggy entry points. `LlmProvider.complete` makes exactly one attempt on one `Target`;
retries, fallback, budgets and DLP are the gateway's.

How a target is reached:
- its provider has a `[providers.NAME]` section with `api_base`: an OpenAI-compatible server,
  with the key from `key_env` / `key_name` when given (none is sent otherwise);
- provider `openai`: OpenAI itself, key from `llm keys set openai` or `$OPENAI_API_KEY`;
- any other provider: the model id as `llm` knows it (`llm models` lists them), via its plugin.

For OpenAI-compatible targets the per-call timeout is the HTTP client's and the client's own
retries are off (ours apply); a caller's nearer deadline (`CallOptions.deadline`, a sandboxed
task's) shortens that one call. A plugin model keeps its plugin's client
settings. Errors come back typed (`ProviderError` with the HTTP status, `ModelTimeout`,
`MalformedResponse`), their text scrubbed of keys (`models.keys.scrub`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from models import keys
from models.config import ModelsConfig, ProviderSettings, Target
from models.errors import (
    MalformedResponse,
    ModelTimeout,
    NoProviderConfigured,
    ProviderError,
)
from models.types import Message, TokenCallback

if TYPE_CHECKING:
    import llm


@dataclass(frozen=True, slots=True)
class RawCompletion:
    """One provider answer. Token counts are None when the provider reported none."""

    text: str
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class CallOptions:
    timeout_s: float
    max_tokens: int
    temperature: float | None = None
    json_mode: bool = False
    deadline: float | None = None  # `time.monotonic()` by which the caller needs an answer

    def timeout_now(self) -> float:
        """The attempt's timeout from now: `timeout_s`, or less when the deadline is nearer."""
        if self.deadline is None:
            return self.timeout_s
        return max(0.001, min(self.timeout_s, self.deadline - time.monotonic()))


_DEADLINE: ContextVar[float | None] = ContextVar("agentfactory_model_deadline", default=None)
"""The current call's `CallOptions.deadline`, read by the OpenAI client of the call just before
it sends: the model objects and their HTTP clients are kept per configured timeout, and a nearer
deadline shortens that one call (the time spent building a client is not granted twice)."""


class Provider(Protocol):
    def complete(
        self, target: Target, messages: Sequence[Message], options: CallOptions,
        on_token: TokenCallback | None,
    ) -> RawCompletion: ...


class LlmProvider:
    """`Provider` over `llm` (imported on the first call). Thread-safe; model objects are built
    once per (target, timeout) and reused."""

    def __init__(self, config: ModelsConfig) -> None:
        self.config = config
        self._models: dict[tuple[Target, float], tuple[llm.Model, str | None]] = {}
        self._lock = threading.Lock()

    def complete(
        self, target: Target, messages: Sequence[Message], options: CallOptions,
        on_token: TokenCallback | None,
    ) -> RawCompletion:
        model, key = self._model(target, options.timeout_s)
        timeout_s = options.timeout_now()  # what this attempt is granted, for its error
        openai_like = _is_openai_chat(model)
        system = "\n\n".join(m.content for m in messages if m.role == "system") or None
        turns = [m for m in messages if m.role != "system"]
        llm_options: dict[str, Any] = {"max_tokens": options.max_tokens}
        if options.temperature is not None:
            llm_options["temperature"] = options.temperature
        if options.json_mode and openai_like:
            llm_options["json_object"] = True
        deadline = _DEADLINE.set(options.deadline)
        try:
            response = self._prompt(model, system, turns, llm_options, on_token is not None)
            pieces: list[str] = []
            for chunk in response:
                pieces.append(chunk)
                if on_token is not None and chunk:
                    on_token(chunk)
            usage = response.usage()
        except Exception as exc:  # every provider failure becomes a typed, scrubbed error
            raise _typed(exc, target, timeout_s, key) from None
        finally:
            _DEADLINE.reset(deadline)
        return RawCompletion("".join(pieces), usage.input, usage.output)

    @staticmethod
    def _prompt(
        model: llm.Model, system: str | None, turns: list[Message], options: dict[str, Any],
        stream: bool,
    ) -> llm.Response:
        if len(turns) == 1 and turns[0].role == "user":
            return model.prompt(turns[0].content, system=system, stream=stream, **options)
        import llm

        history = [llm.user(m.content) if m.role == "user" else llm.assistant(m.content)
                   for m in turns]
        if system:
            history.insert(0, llm.system(system))
        return model.prompt(messages=history, stream=stream, **options)

    def _model(self, target: Target, timeout_s: float) -> tuple[llm.Model, str | None]:
        with self._lock:
            found = self._models.get((target, timeout_s))
        if found is None:
            found = self._build(target, timeout_s)
            with self._lock:
                self._models[(target, timeout_s)] = found
        return found

    def _build(self, target: Target, timeout_s: float) -> tuple[llm.Model, str | None]:
        section = self.config.providers.get(target.provider)
        if section is not None and section.api_base:
            key = _section_key(section)
            model = _gateway_chat()(target.model, model_name=target.model,
                                    api_base=section.api_base, timeout_s=timeout_s)
            model.needs_key = target.provider if key else None
            model.key = key
            return model, key
        if target.provider == "openai":
            key = _section_key(section) if section is not None else None
            model = _gateway_chat()(target.model, model_name=target.model, timeout_s=timeout_s)
            model.key_env_var = "OPENAI_API_KEY"
            key = key or _llm_key(model, target)
            model.key = key
            return model, key
        import llm

        try:
            model = llm.get_model(target.model)
        except llm.UnknownModelError:
            raise NoProviderConfigured(str(target)) from None
        if _is_openai_chat(model):  # llm's own OpenAI models: our timeout and retries apply
            chat = _gateway_chat()(model.model_id, model_name=getattr(model, "model_name", None),
                                   api_base=getattr(model, "api_base", None),
                                   timeout_s=timeout_s)
            chat.needs_key, chat.key_env_var = model.needs_key, model.key_env_var
            model = chat
        key = _llm_key(model, target)
        if key is not None:
            model.key = key
        return model, key


def _section_key(section: ProviderSettings) -> str | None:
    if section.key_env:
        return keys.from_environment(section.key_env)
    if section.key_name:
        return keys.from_key_store(section.key_name)
    return None


def _llm_key(model: llm.Model, target: Target) -> str | None:
    """The key `llm` finds for `model` (its key store, then the environment); a missing one is
    `NoProviderConfigured` saying where to put it."""
    if not getattr(model, "needs_key", None):
        return None
    import llm

    try:
        return keys.remember(model.get_key())
    except llm.NeedsKeyException:
        variable = getattr(model, "key_env_var", None)
        raise ProviderKeyMissing(str(target), model.needs_key or target.provider,
                                 variable) from None


class ProviderKeyMissing(NoProviderConfigured):
    """Model `model` needs a key, and none is set."""

    code = "provider_key_missing"

    def __init__(self, model: str, key_name: str, variable: str | None) -> None:
        self.model = model
        self.key_name = key_name
        self.variable = variable
        where = f"set ${variable} or run" if variable else "run"
        Exception.__init__(self, f"model {model!r} needs an API key: {where} "
                                 f"`llm keys set {key_name}`")


_GATEWAY_CHAT: type[Any] | None = None


def _gateway_chat() -> type[Any]:
    """llm's OpenAI chat model with our timeout and without the client's own retries."""
    global _GATEWAY_CHAT
    if _GATEWAY_CHAT is None:
        from llm.default_plugins.openai_models import Chat

        class GatewayChat(Chat):
            def __init__(self, *args: Any, timeout_s: float, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # llm's
                self.timeout_s = timeout_s
                self._clients: dict[tuple[str | None, bool], Any] = {}

            def get_client(self, key: str | None, *, async_: bool = False) -> Any:
                # llm builds a client per call, and each loads the CA store (~0.1 s): keep one
                # per key (an openai client is thread-safe and pools its connections).
                client = self._clients.get((key, async_))
                if client is None:
                    client = super().get_client(key, async_=async_)  # type: ignore[no-untyped-call]
                    client = client.with_options(timeout=self.timeout_s, max_retries=0)
                    self._clients[(key, async_)] = client
                deadline = _DEADLINE.get()
                left = None if deadline is None else max(0.001, deadline - time.monotonic())
                if left is not None and left < self.timeout_s:  # this call only: a cheap copy
                    client = client.with_options(timeout=left)  # on the same connection pool
                return client

        _GATEWAY_CHAT = GatewayChat
    return _GATEWAY_CHAT


def _is_openai_chat(model: object) -> bool:
    from llm.default_plugins.openai_models import Chat

    return isinstance(model, Chat)


def _typed(exc: Exception, target: Target, timeout_s: float, key: str | None) -> ProviderError:
    """`exc` (from `llm` or a provider client) as one of our errors, its text scrubbed."""
    import openai

    extra = (key,) if key else ()
    provider, model = target.provider, target.model
    if isinstance(exc, openai.APITimeoutError):
        return ModelTimeout(provider, model, timeout_s)
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(provider, model, exc.status_code, keys.scrub(_body(exc), extra))
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(provider, model, None, keys.scrub(str(exc), extra))
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)  # other plugins' HTTP errors
    if isinstance(status, int):
        return ProviderError(provider, model, status, keys.scrub(str(exc), extra))
    if "timeout" in type(exc).__name__.lower():
        return ModelTimeout(provider, model, timeout_s)
    return MalformedResponse(
        provider, model, 200, keys.scrub(f"unreadable answer ({type(exc).__name__}: {exc})", extra)
    )


def _body(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else None
        return str(message or body)
    return str(body or exc)
