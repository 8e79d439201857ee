"""The agent factory: resolved template + config -> `Agent` bound to its implementation.

Invariants:
- warm creation is one cache lookup in the template manager, one set membership test and one
  `Agent` construction — no file access, no validation, no copying of the template;
- an agent is created only if some registered plugin provides its template's implementation
  (`implementation`, defaulting to the template name), so `process()` cannot fail for lack of one;
- registering or unregistering a plugin reloads plugin-contributed templates and forgets cached
  resolutions (validators may have changed); agents created afterwards see the new state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from core.agent import Agent
from core.config import FactorySettings
from core.errors import AgentInputError, NoImplementation, PluginError
from core.manager import ManagerMetrics, TemplateManager
from core.plugins import implementations, make_plugin_manager, register
from core.resolved import ResolvedTemplate
from core.timing import DurationHistogram, DurationSnapshot

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from core.template_cache import TemplateDiskCache

AgentSpec = tuple[str, dict[str, Any] | None]


@dataclass(frozen=True)
class FactoryStats:
    """Counters of one factory."""

    agents_created: int
    per_template: dict[str, int]
    plugins: tuple[str, ...]
    implementations: tuple[str, ...]
    templates: ManagerMetrics
    # Per created agent: template lookup (resolution when cold) and construction, not the
    # agentfactory_agent_created hooks.
    create_seconds: DurationSnapshot


class AgentFactory:
    """Creates agents from templates. Thread-safe; use as a context manager or call `close()`."""

    def __init__(
        self,
        settings: FactorySettings | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        *,
        include_builtin_templates: bool = True,
        clock: Callable[[], float] = time.monotonic,
        disk_cache: TemplateDiskCache | None = None,
    ) -> None:
        """`disk_cache` is for processes that create an agent or two and exit (see
        `core.template_cache`); a long-running factory gains nothing from it."""
        self.settings = settings or FactorySettings()
        self.plugin_manager = plugin_manager or make_plugin_manager()
        self._hook = self.plugin_manager.hook
        self._implementations = implementations(self.plugin_manager)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._create_times = DurationHistogram()
        self._pool: ThreadPoolExecutor | None = None  # started by the first cold acreate_agent
        self.templates = TemplateManager(
            self.settings,
            self.plugin_manager,
            include_builtin=include_builtin_templates,
            clock=clock,
            disk_cache=disk_cache,
        )

    # ----------------------------------------------------------------- creating

    def create_agent(self, template_name: str, config: dict[str, Any] | None = None) -> Agent:
        """A new agent for template `template_name` with `config` (copied)."""
        start = perf_counter()
        return self._build(self.templates.get(template_name), config, start)

    async def acreate_agent(
        self, template_name: str, config: dict[str, Any] | None = None
    ) -> Agent:
        """`create_agent` for async code; a cold template is resolved in one of the factory's
        `settings.worker_threads` threads."""
        if template_name in self.templates.cached_names():
            return self.create_agent(template_name, config)
        import asyncio  # only the async API needs it; importing it costs `agentfactory run` ~20 ms

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers(), self.create_agent, template_name, config)

    def _workers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(
                    self.settings.worker_threads, thread_name_prefix="agentfactory-worker"
                )
            return self._pool

    def bulk_create(self, specs: Iterable[AgentSpec]) -> list[Agent]:
        """One agent per `(template_name, config)`; every agent of a template in this call shares
        the same resolved template, even if a reload happens meanwhile."""
        resolved: dict[str, ResolvedTemplate] = {}
        agents = []
        for name, config in specs:
            start = perf_counter()
            template = resolved.get(name)
            if template is None:
                template = resolved[name] = self.templates.get(name)
            agents.append(self._build(template, config, start))
        return agents

    def _build(
        self,
        template: ResolvedTemplate,
        config: dict[str, Any] | None,
        start: float,
        depth: int = 0,
    ) -> Agent:
        implementation = template.implementation or template.name
        if implementation not in self._implementations:
            raise NoImplementation(template.name, implementation)
        if config is None:
            config = {}
        elif isinstance(config, dict):
            config = dict(config)
        else:
            raise AgentInputError(f"an agent config must be a JSON object, not {type(config)}")
        agent = Agent(template, config, implementation, self._hook, self._spawn, depth)
        name = template.name
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            self._create_times.observe(perf_counter() - start)
        self._hook.agentfactory_agent_created(agent=agent)
        return agent

    def _spawn(self, template_name: str, config: dict[str, Any] | None, depth: int) -> Agent:
        """An agent started by another (`Agent.spawn`), `depth` levels below the first."""
        return self._build(self.templates.get(template_name), config, perf_counter(), depth)

    # ----------------------------------------------------------------- plugins

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register `plugin`; its templates and implementations are usable right away."""
        registered = register(self.plugin_manager, plugin, name)
        self._plugins_changed()
        return registered

    def unregister_plugin(self, name: str) -> None:
        """Remove the plugin registered as `name`, with the templates it contributed."""
        if self.plugin_manager.get_plugin(name) is None:
            raise PluginError(f"no plugin named {name!r} is registered")
        self.plugin_manager.unregister(name=name)
        self._plugins_changed()

    def _plugins_changed(self) -> None:
        self._implementations = implementations(self.plugin_manager)
        self.templates.reload()  # also clears cached resolutions: validators may differ now

    # ----------------------------------------------------------------- reporting

    def stats(self) -> FactoryStats:
        with self._lock:
            counts = dict(self._counts)
            create_seconds = self._create_times.snapshot()
        names = tuple(sorted(n for n, _ in self.plugin_manager.list_name_plugin()))
        return FactoryStats(
            agents_created=sum(counts.values()),
            per_template=counts,
            plugins=names,
            implementations=tuple(sorted(self._implementations)),
            templates=self.templates.metrics(),
            create_seconds=create_seconds,
        )

    def metrics(self) -> ManagerMetrics:
        return self.templates.metrics()

    def close(self) -> None:
        self.templates.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __enter__(self) -> AgentFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
