"""Server metrics, exposed in the Prometheus formats by `prometheus-client`.

Each `ServerMetrics` owns a `CollectorRegistry` (never the library's global one), so two apps in
one process (two tests) count separately. It holds:

- the server's own counters (publishes, downloads, installs) and the request-latency histogram,
  updated where the events happen;
- a collector that reads the factory's and the sandbox's own counters and duration histograms at
  scrape time (`FactorySnapshot`), so core never imports a metrics library and nothing is counted
  twice;
- a collector of model tokens and cost by model and agent, summed from the spend ledger at
  scrape time (`ModelUsageCollector`), so every worker's model calls are counted once;
- the process and platform collectors (`process_*`, `python_info`).

Multi-process mode: when `PROMETHEUS_MULTIPROC_DIR` is set before the server starts (as
prometheus-client requires), the counters and histograms above are written to files in that
directory, and a scrape answered by any worker sums every worker's values (`MultiProcessCollector`).
The scrape-time figures (factory, sandbox, process) are those of the worker that answered: they
live in that worker's memory. The directory must be emptied between runs of the server.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from core.timing import DurationSnapshot

ENV_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
INF = float("inf")

# Seconds. The API's budget is p99 <= 100 ms, so the buckets are dense below that.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class FactorySnapshot:
    """What the factory and the sandbox report at scrape time (their own counters)."""

    templates_loaded: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    agents_created: int = 0
    sandbox_runs: int = 0
    sandbox_failures: dict[str, int] = field(default_factory=dict)  # kind -> count
    template_load: DurationSnapshot = field(default_factory=DurationSnapshot)
    template_resolve: DurationSnapshot = field(default_factory=DurationSnapshot)
    agent_create: DurationSnapshot = field(default_factory=DurationSnapshot)

    @property
    def cache_hit_rate(self) -> float:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else 0.0

    @classmethod
    def of(cls, factory: Any) -> FactorySnapshot:
        """The figures of `factory` (a `core.factory.AgentFactory`, or None before start-up)
        and of this process's sandbox runs."""
        runs, failures = _sandbox_counts()
        if factory is None:
            return cls(sandbox_runs=runs, sandbox_failures=failures)
        stats = factory.stats()
        templates = stats.templates
        return cls(
            templates_loaded=templates.templates_loaded,
            cache_hits=templates.cache_hits,
            cache_misses=templates.cache_misses,
            agents_created=stats.agents_created,
            sandbox_runs=runs,
            sandbox_failures=failures,
            template_load=templates.load_seconds,
            template_resolve=templates.resolve_seconds,
            agent_create=stats.create_seconds,
        )


def _sandbox_counts() -> tuple[int, dict[str, int]]:
    """Tasks this process ran in the sandbox (vetting uploads, installed agents), and the
    failures among them by kind. Read without importing the sandbox if it never ran."""
    runtime = sys.modules.get("sandbox.runtime")
    counts: dict[str, int] = runtime.run_counts() if runtime is not None else {}
    failures = {kind: n for kind, n in counts.items() if kind != "ok"}
    return sum(counts.values()), failures


def _histogram(name: str, help_: str, snap: DurationSnapshot) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == INF else repr(bound), float(n)) for bound, n in snap.cumulative()
    ]
    return HistogramMetricFamily(name, help_, buckets=buckets, sum_value=snap.total_s)


class FactoryCollector(Collector):
    """Reads the tracked factory's figures at each scrape (see the module docstring)."""

    def __init__(self) -> None:
        self.factory: Any = None

    def collect(self) -> Iterator[Any]:
        s = FactorySnapshot.of(self.factory)
        yield GaugeMetricFamily(
            "agentfactory_templates_loaded", "Templates known to the factory.", s.templates_loaded
        )
        yield CounterMetricFamily(
            "agentfactory_template_cache_hits", "Template cache hits.", s.cache_hits
        )
        yield CounterMetricFamily(
            "agentfactory_template_cache_misses", "Template cache misses.", s.cache_misses
        )
        yield GaugeMetricFamily(
            "agentfactory_template_cache_hit_rate", "Hits / lookups since start.", s.cache_hit_rate
        )
        yield CounterMetricFamily(
            "agentfactory_agents_created", "Agents created by the factory.", s.agents_created
        )
        yield CounterMetricFamily(
            "agentfactory_sandbox_runs", "Tasks run in the sandbox.", s.sandbox_runs
        )
        failures = CounterMetricFamily(
            "agentfactory_sandbox_failures", "Sandbox failures by kind.", labels=("kind",)
        )
        for kind, count in sorted(s.sandbox_failures.items()):
            failures.add_metric((kind,), count)
        yield failures
        yield _histogram(
            "agentfactory_template_load_seconds",
            "Time to read and validate one template file or plugin document.",
            s.template_load,
        )
        yield _histogram(
            "agentfactory_template_resolve_seconds",
            "Time to resolve one template on a cache miss (extends chain and validators).",
            s.template_resolve,
        )
        yield _histogram(
            "agentfactory_agent_create_seconds",
            "Time to create one agent (template lookup and construction).",
            s.agent_create,
        )


class ModelUsageCollector(Collector):
    """Tokens and cost of model calls by model and agent, read from the spend ledger at each
    scrape (the ledger is the registry database's `model_usage` table: every worker's calls,
    whichever process made them)."""

    def __init__(self) -> None:
        self.ledger: Any = None  # a models.ledger.SpendLedger once the app is started

    def collect(self) -> Iterator[Any]:
        tokens = CounterMetricFamily(
            "agentfactory_model_tokens", "Model tokens by model, agent and direction.",
            labels=("model", "agent", "direction"),
        )
        cost = CounterMetricFamily(
            "agentfactory_model_cost_usd", "Model cost in USD by model and agent.",
            labels=("model", "agent"),
        )
        for total in self.ledger.totals() if self.ledger is not None else ():
            tokens.add_metric((total.model, total.agent, "input"), total.input_tokens)
            tokens.add_metric((total.model, total.agent, "output"), total.output_tokens)
            cost.add_metric((total.model, total.agent), total.cost)
        yield tokens
        yield cost


class ServerMetrics:
    """The server's own metrics, on a registry of their own, plus the scrape-time collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.publishes = Counter(
            "agentfactory_publishes", "Releases published.", registry=self.registry
        )
        self.downloads = Counter(
            "agentfactory_downloads", "Archives downloaded.", registry=self.registry
        )
        self.installs = Counter(
            "agentfactory_installs",
            "Downloads made by an installer (install=1).",
            registry=self.registry,
        )
        self.requests = Histogram(
            "agentfactory_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.factory = FactoryCollector()
        self.model_usage = ModelUsageCollector()
        # In this process's memory whatever the mode: registered on the per-app registry, and
        # added to the aggregating registry of a multi-process scrape.
        self._local: tuple[Collector, ...] = (
            self.factory,
            self.model_usage,
            ProcessCollector(registry=None),
            PlatformCollector(registry=None),
        )
        for collector in self._local:
            self.registry.register(collector)

    def track(self, factory: Any) -> None:
        """Report `factory`'s figures from now on (the app calls this once it is built)."""
        self.factory.factory = factory

    def track_usage(self, ledger: Any) -> None:
        """Report the model usage recorded in `ledger` (a `models.ledger.SpendLedger`)."""
        self.model_usage.ledger = ledger

    def snapshot(self) -> FactorySnapshot:
        return FactorySnapshot.of(self.factory.factory)

    def count(self, counter: Counter) -> int:
        """This process's value of one of the server's own unlabelled counters."""
        sample = next(s for s in _samples(counter) if s.name.endswith("_total"))
        return int(sample.value)

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """`(body, content type)` of a scrape, in the format the `Accept` header asks for
        (Prometheus text 0.0.4 by default, OpenMetrics when asked)."""
        encoder, content_type = choose_encoder(accept or "")
        if not os.environ.get(ENV_MULTIPROC_DIR):
            return encoder(self.registry), content_type
        aggregate = CollectorRegistry()
        MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]  # untyped upstream
        for collector in self._local:
            aggregate.register(collector)
        return encoder(aggregate), content_type


def _samples(collector: Collector) -> Iterable[Any]:
    for family in collector.collect():
        yield from family.samples
