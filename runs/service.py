"""The run service as the API uses it: submit, read, wait, cancel.

`RunService` ties the store, an engine and the watch together. Submission resolves the agent in
the server's factory first (templates only: nothing is created or run in this process), so an
unknown agent is refused at once (`TemplateNotFound`, with the closest names) and a specifier
the offered version does not meet is `NoMatchingAgentVersion`; the worker resolves it again when
the run executes and records the exact version that ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import AgentInputError, TemplateNotFound
from runs.engine import RunEngine
from runs.errors import RunError
from runs.executor import installed_refusal, split_agent, version_allowed
from runs.schemas import NewRun, NotStorable, RunPublic, stored_json
from runs.store import RunStore
from runs.watch import RunWatch, Subscription

if TYPE_CHECKING:
    from core.factory import AgentFactory


class TimeoutTooLong(RunError):
    def __init__(self, timeout_s: float, limit: float) -> None:
        self.timeout_s = timeout_s
        self.limit = limit
        super().__init__(f"timeout_s {timeout_s:g} is over this server's limit of {limit:g} s")


@dataclass
class RunService:
    store: RunStore
    engine: RunEngine
    watch: RunWatch = field(default_factory=RunWatch)

    def submit(
        self,
        factory: AgentFactory,
        publisher_id: int,
        agent: str,
        task: dict[str, Any],
        *,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
        subscription: Subscription | None = None,
    ) -> tuple[RunPublic, bool]:
        """The queued run (and True), or the run an earlier use of `idempotency_key` made;
        `actor` is the account's name, for the audit trail. `subscription` (from
        `watch.watching()`) is bound to the run before it is handed to the engine, so its end
        is never missed."""
        from runs.errors import NoMatchingAgentVersion

        settings = self.store.settings
        name, specifier = split_agent(agent)
        try:
            template = factory.templates.get(name)
        except TemplateNotFound:
            refused = installed_refusal(factory, name)  # a revoked agent: say so, and why
            if refused is not None:
                raise refused from None
            raise
        if not version_allowed(template.version, specifier):
            raise NoMatchingAgentVersion(name, specifier, template.version)
        timeout = settings.default_timeout_s if timeout_s is None else timeout_s
        if timeout > settings.max_timeout_s:
            raise TimeoutTooLong(timeout, settings.max_timeout_s)
        try:
            stored_json(task, "input")  # refused here, before it is pickled for the engine
        except NotStorable as exc:
            raise AgentInputError(str(exc)) from None
        new = NewRun(
            agent=agent, agent_name=template.name, version=template.version, input=task,
            timeout_s=timeout, idempotency_key=idempotency_key,
        )
        def bound(run_id: str) -> None:
            if subscription is not None:
                self.watch.bind(subscription, run_id)

        # An engine with a process of its own creates the run there and executes it at once.
        made = self.engine.create(publisher_id, new, actor, bound)
        if made is None:
            made = self.store.create(publisher_id, new, actor=actor)
            bound(made[0].id)
            if made[1]:
                self.engine.submit(made[0].id)
        run, created = made
        if created:
            self.watch.progress(run.id)  # event streams; a waiter for its end sleeps on
        return run, created

    def cancel(self, run_id: str, publisher_id: int) -> RunPublic:
        run = self.store.cancel(run_id, publisher_id)
        if run.status == "running":
            self.engine.cancel(run_id)
        self.watch.notify(run_id)
        return run

    def close(self) -> None:
        self.engine.close()
