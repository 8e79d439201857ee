"""`ModelGateway`: the one way every model call is made.

Prompt agents, native plugins, the sandbox's host import and the planning supervisor all call
`gateway.complete(request)`. The order of one call, each step a named method:

1. `_targets`: the request's model (an alias of the configuration or `provider:model`) becomes
   the ordered fallback list of concrete models; a model the context does not allow is refused.
2. `_filter_prompt`: the DLP policy (stricter of the deployment's and the template's) masks or
   refuses what would leave the machine; an action is an audit event.
3. `BudgetGuard.reserve`: the estimate (input from the text length, output = `max_tokens`,
   priced at the dearest model of the list) must fit every budget, else `BudgetExceeded` and
   no request is sent.
4. `_call`: each model in turn, each with up to `retries` further attempts on 429/5xx/no answer
   (exponential backoff with jitter, by `stamina`); a model that still fails, times out or
   answers garbage passes to the next. Once a token has been streamed to the caller nothing is
   retried (the caller has seen part of an answer). A request's `timeout_s` (the caller's
   remaining time) bounds all of it: each attempt is cut to what is left.
5. `BudgetGuard.settle`: the reported usage (estimated when the provider gave none) is recorded
   and priced; `on_usage` is told; a call that went over a budget raises `BudgetExceeded`.
6. `_filter_output`: the DLP policy applies to the answer.

Streaming: tokens reach `context.on_token` as they come, unless the output filter is on (`mask`
or `refuse`); the answer is then scanned whole and handed to `on_token` in one piece, because a
secret split across tokens could not be masked after it was shown.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from models import dlp
from models.audit import AuditEvent, AuditSink, LoggingAuditSink
from models.budget import BudgetGuard, Estimate, estimate_tokens
from models.config import ModelsConfig, Target, load_config
from models.errors import (
    AllModelsFailed,
    ModelError,
    ModelNotAllowed,
    ModelTimeout,
    NoProviderConfigured,
    ProviderError,
)
from models.ledger import SpendLedger
from models.providers import CallOptions, LlmProvider, Provider, RawCompletion
from models.types import CallContext, Completion, CompletionRequest, DlpPolicy, Message, Usage

LOCAL_LEDGER = "usage.db"


class ModelGateway:
    """See the module doc. Thread-safe: one gateway serves every agent of a process."""

    def __init__(
        self,
        config: ModelsConfig,
        ledger: SpendLedger,
        provider: Provider | None = None,
        audit: AuditSink | None = None,
        budgets: BudgetGuard | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.provider = provider or LlmProvider(config)
        self.audit = audit or LoggingAuditSink()
        self.budgets = budgets or BudgetGuard(config.budgets, ledger)

    @classmethod
    def local(cls, home: Path | None = None) -> ModelGateway:
        """The gateway of a user's machine: the deployment's configuration and a ledger in
        `$AGENTFACTORY_HOME/usage.db`."""
        from core.paths import agentfactory_home
        from models.ledger_sql import SqlLedger

        return cls(load_config(), SqlLedger.local((home or agentfactory_home()) / LOCAL_LEDGER))

    # ----------------------------------------------------------------- the call

    def complete(self, request: CompletionRequest) -> Completion:
        """Make one model call (see the module doc for the steps and their errors)."""
        ctx = request.context
        targets = self._targets(request.model, ctx)
        policy = dlp.strictest(self.config.dlp, ctx.dlp)
        messages, masked_in = self._filter_prompt(request, policy)
        max_tokens = request.max_tokens or self.config.max_tokens
        input_estimate = estimate_tokens("".join(m.content for m in messages))
        estimate = Estimate(input_estimate + max_tokens,
                            max(self._cost(t, input_estimate, max_tokens) for t in targets))
        buffered = policy != "off"
        on_token = None if buffered else ctx.on_token
        try:
            with self.budgets.reserve(ctx, estimate) as reservation:
                target, raw, latency_ms = self._call(request, targets, messages, max_tokens,
                                                     on_token)
                usage = self._usage(target, raw, messages, latency_ms)
                if ctx.on_usage is not None:
                    ctx.on_usage(usage)
                self.budgets.settle(ctx, usage, reservation)
        except ModelError as exc:
            self._audit("model.call", exc.code, request, {"error": exc.code})
            raise
        self._audit("model.call", "ok", request, {
            "provider": usage.provider, "model_id": usage.model,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cost": usage.cost, "latency_ms": round(usage.latency_ms, 3),
        })
        text, masked_out = self._filter_output(request, policy, raw.text)
        if buffered and ctx.on_token is not None and text:
            ctx.on_token(text)
        return Completion(text, usage, tuple(sorted({*masked_in, *masked_out})))

    async def acomplete(self, request: CompletionRequest) -> Completion:
        """`complete` for async code, in a worker thread (the providers' clients block)."""
        import asyncio

        return await asyncio.to_thread(self.complete, request)

    # ----------------------------------------------------------------- the steps

    def _targets(self, model: str, ctx: CallContext) -> tuple[Target, ...]:
        if ctx.allowed_models and model not in ctx.allowed_models:
            raise ModelNotAllowed(model, ctx.allowed_models)
        alias = self.config.aliases.get(model)
        if alias is not None:
            return alias.targets
        target = Target.parse(model, default_provider="")
        if not target.provider:
            raise NoProviderConfigured(model)
        return (target,)

    def _filter_prompt(
        self, request: CompletionRequest, policy: DlpPolicy
    ) -> tuple[tuple[Message, ...], tuple[str, ...]]:
        if policy == "off":
            return request.messages, ()
        messages: list[Message] = []
        kinds: set[str] = set()
        try:
            for message in request.messages:
                found = dlp.apply(policy, message.content, "prompt")
                kinds.update(found.kinds)
                messages.append(replace(message, content=found.masked_text))
        except ModelError as exc:  # refused: the kinds are in the error
            self._audit("model.dlp", "refused", request,
                        {"direction": "prompt", "kinds": list(getattr(exc, "kinds", ()))})
            raise
        if kinds:
            self._audit("model.dlp", "masked", request,
                        {"direction": "prompt", "kinds": sorted(kinds)})
        return tuple(messages), tuple(sorted(kinds))

    def _filter_output(
        self, request: CompletionRequest, policy: DlpPolicy, text: str
    ) -> tuple[str, tuple[str, ...]]:
        try:
            found = dlp.apply(policy, text, "output")
        except ModelError as exc:
            self._audit("model.dlp", "refused", request,
                        {"direction": "output", "kinds": list(getattr(exc, "kinds", ()))})
            raise
        if found.kinds:
            self._audit("model.dlp", "masked", request,
                        {"direction": "output", "kinds": list(found.kinds)})
        return found.masked_text, found.kinds

    def _call(
        self, request: CompletionRequest, targets: Sequence[Target],
        messages: Sequence[Message], max_tokens: int, on_token: object,
    ) -> tuple[Target, RawCompletion, float]:
        """The first answer of `targets` (see step 4), and the milliseconds it took."""
        import stamina

        alias = self.config.aliases.get(request.model)
        timeout_s = (alias.timeout_s if alias and alias.timeout_s else None) or \
            self.config.timeout_s
        retries = alias.retries if alias and alias.retries is not None else self.config.retries
        options = CallOptions(timeout_s, max_tokens, request.temperature, request.json_mode)
        # The caller's remaining time bounds the whole call: each attempt is cut to what is
        # left, retries stop with it and the next model is not tried once it is gone.
        deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
        streamed = False

        def forward(token: str) -> None:
            nonlocal streamed
            streamed = True
            request.context.on_token(token)  # type: ignore[misc]  # set when forward is used

        def worth_retrying(exc: Exception) -> bool:
            return isinstance(exc, ProviderError) and exc.retryable and not streamed

        failures: list[ProviderError] = []
        for target in targets:
            if deadline is not None and time.monotonic() >= deadline:
                if not failures:
                    raise ModelTimeout(target.provider, target.model, request.timeout_s or 0.0)
                break  # the caller's time is up: what failed so far is the answer
            try:
                for attempt in stamina.retry_context(
                    on=worth_retrying, attempts=retries + 1, timeout=request.timeout_s,
                    wait_initial=self.config.backoff_s, wait_max=self.config.backoff_max_s,
                    wait_jitter=self.config.backoff_s,
                ):
                    with attempt:
                        started = time.perf_counter()
                        raw = self.provider.complete(
                            target, messages, options if deadline is None else
                            replace(options, deadline=deadline), forward if on_token else None
                        )
                        return target, raw, (time.perf_counter() - started) * 1000
            except ProviderError as exc:
                if streamed:
                    raise
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        raise AllModelsFailed(request.model, failures)

    def _cost(self, target: Target, input_tokens: int, output_tokens: int) -> float:
        price = self.config.price(target)
        return price.cost(input_tokens, output_tokens) if price else 0.0

    def _usage(
        self, target: Target, raw: RawCompletion, messages: Sequence[Message], latency_ms: float
    ) -> Usage:
        estimated = raw.input_tokens is None or raw.output_tokens is None
        input_tokens = raw.input_tokens if raw.input_tokens is not None else \
            estimate_tokens("".join(m.content for m in messages))
        output_tokens = raw.output_tokens if raw.output_tokens is not None else \
            (estimate_tokens(raw.text) if raw.text else 0)
        return Usage(
            input_tokens=input_tokens, output_tokens=output_tokens,
            cost=self._cost(target, input_tokens, output_tokens), model=target.model,
            provider=target.provider, latency_ms=latency_ms,
            estimated=estimated,
        )

    def _audit(self, action: str, outcome: str, request: CompletionRequest,
               detail: dict[str, object]) -> None:
        ctx = request.context
        self.audit.emit(AuditEvent(action, outcome, ctx.account, ctx.agent, ctx.run_id,
                                   request.model, dict(detail)))
