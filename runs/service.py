"""The run service as the API uses it: submit, read, wait, cancel.

`RunService` ties the store, an engine and the watch together. Submission resolves the agent in
the server's factory first (templates only: nothing is created or run in this process), so an
unknown agent is refused at once (`TemplateNotFound`, with the closest names) and a specifier
the offered version does not meet is `NoMatchingAgentVersion`; the worker resolves it again when
the run executes and records the exact version that ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from core.errors import TemplateNotFound
from runs.engine import RunEngine
from runs.errors import RunError
from runs.executor import installed_refusal, split_agent, version_allowed
from runs.schemas import NewRun, RunPublic
from runs.store import RunStore, input_json
from runs.watch import RunWatch, Subscription

if TYPE_CHECKING:
    from core.factory import AgentFactory
    from core.resolved import ResolvedTemplate

INLINE_BYTES = 16 * 1024
"""The largest request whose input `RunService.submit` checks on the event loop (walking a
256 KiB input there held the loop for 140 ms)."""


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

    async def submit(
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
        request_bytes: int | None = None,
    ) -> tuple[RunPublic, bool]:
        """The queued run (and True), or the run an earlier use of `idempotency_key` made;
        `actor` is the account's name, for the audit trail. `subscription` (from
        `watch.watching()`) is bound to the run before it is handed to the engine, so its end
        is never missed. `request_bytes` is the size of the request that carried `task`
        (None: unknown).

        Called on an event loop. The checks run on the loop when they cannot block it: the
        agent's template is in the factory's cache and the input is small (at most
        `INLINE_BYTES`); otherwise in a worker thread. An engine with a process of its own
        then creates the run there, and nothing waits in a thread (handing work to a thread
        and back was a tenth of a busy API process's time); a run created in this process's
        store is created in a worker thread."""
        template = None
        if request_bytes is not None and request_bytes <= INLINE_BYTES:
            template = factory.templates.cached(split_agent(agent)[0])
        if template is not None:
            new = self.new_run(factory, agent, task, timeout_s, idempotency_key, template)
        else:
            new = await to_thread.run_sync(
                self.new_run, factory, agent, task, timeout_s, idempotency_key
            )

        def bound(run_id: str) -> None:
            if subscription is not None:
                self.watch.bind(subscription, run_id)

        # An engine with a process of its own creates the run there and executes it at once.
        made = await self.engine.create(publisher_id, new, actor, bound)
        if made is None:
            made = await to_thread.run_sync(self._create_here, publisher_id, new, actor, bound)
        run, created = made
        if created:
            self.watch.progress(run.id)  # event streams; a waiter for its end sleeps on
        return run, created

    def new_run(
        self,
        factory: AgentFactory,
        agent: str,
        task: dict[str, Any],
        timeout_s: float | None,
        idempotency_key: str | None,
        template: ResolvedTemplate | None = None,
    ) -> NewRun:
        """The submission, checked: the agent is known in a version its specifier allows, the
        timeout within the server's limit, the input storable. `template`: the agent's, when
        the caller has it."""
        from runs.errors import NoMatchingAgentVersion

        settings = self.store.settings
        name, specifier = split_agent(agent)
        if template is None:
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
        input_json(task)  # refused here, before it is pickled for the engine
        return NewRun(
            agent=agent, agent_name=template.name, version=template.version, input=task,
            timeout_s=timeout, idempotency_key=idempotency_key,
        )

    def _create_here(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Callable[[str], None]
    ) -> tuple[RunPublic, bool]:
        """The run created in this process's store and handed to the engine."""
        made = self.store.create(publisher_id, new, actor=actor)
        bound(made[0].id)
        if made[1]:
            self.engine.submit(made[0].id)
        return made

    def cancel(self, run_id: str, publisher_id: int) -> RunPublic:
        run = self.store.cancel(run_id, publisher_id)
        if run.status == "running":
            self.engine.cancel(run_id)
        self.watch.notify(run_id)
        return run

    def close(self) -> None:
        self.engine.close()
