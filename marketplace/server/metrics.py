"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

The server owns its counters (publishes, downloads, installs, request latency); the factory and
the sandbox own theirs, and are read through a `FactorySnapshot` taken at scrape time, so no
figure is counted twice. Invariants: metric and label names are fixed at construction; label
values are escaped; counters only grow; every update happens under one lock, so the event loop
and worker threads may record concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Labels = tuple[str, ...]

# Seconds. The API's budget is p99 <= 100 ms, so the buckets are dense below that.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_: str, labelnames: Labels = ()) -> None:
        self.name, self.help, self.labelnames = name, help_, labelnames
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("a counter only grows")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not items and not self.labelnames:
            items = [((), 0.0)]
        lines += [f"{self.name}{_labels(self.labelnames, k)} {_num(v)}" for k, v in items]
        return lines


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    n: int = 0


class Histogram:
    def __init__(
        self,
        name: str,
        help_: str,
        labelnames: Labels = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.name, self.help, self.labelnames = name, help_, labelnames
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, _Series] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _Series([0] * len(self.buckets))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series.counts[i] += 1
                    break
            series.total += value
            series.n += 1

    def count(self, *labels: str) -> int:
        with self._lock:
            series = self._series.get(labels)
            return series.n if series else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            snapshot = sorted((k, list(s.counts), s.total, s.n) for k, s in self._series.items())
        for key, counts, total, n in snapshot:
            cumulative = 0
            for bound, c in zip(self.buckets, counts, strict=True):
                cumulative += c
                le = f'le="{_num(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {cumulative}")
            inf = _labels(self.labelnames, key, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{inf} {n}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {n}")
        return lines


@dataclass(frozen=True)
class FactorySnapshot:
    """What the factory and the sandbox report at scrape time (their own counters)."""

    templates_loaded: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    agents_created: int = 0
    sandbox_runs: int = 0
    sandbox_failures: dict[str, int] = field(default_factory=dict)  # kind -> count

    @property
    def cache_hit_rate(self) -> float:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else 0.0


def _gauge(name: str, help_: str, kind: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {_num(value)}" for labels, value in samples]
    return lines


class ServerMetrics:
    """The server's own counters plus the rendering of a factory snapshot."""

    def __init__(self) -> None:
        self.publishes = Counter("agentfactory_publishes_total", "Releases published.")
        self.downloads = Counter("agentfactory_downloads_total", "Archives downloaded.")
        self.installs = Counter(
            "agentfactory_installs_total", "Downloads made by an installer (install=1)."
        )
        self.requests = Histogram(
            "agentfactory_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ("method", "route", "status"),
        )

    def render(self, snapshot: FactorySnapshot) -> str:
        s = snapshot
        singles = [
            ("agentfactory_templates_loaded", "Templates known to the factory.", "gauge",
             s.templates_loaded),
            ("agentfactory_template_cache_hits_total", "Template cache hits.", "counter",
             s.cache_hits),
            ("agentfactory_template_cache_misses_total", "Template cache misses.", "counter",
             s.cache_misses),
            ("agentfactory_template_cache_hit_rate", "Hits / lookups since start.", "gauge",
             s.cache_hit_rate),
            ("agentfactory_agents_created_total", "Agents created by the factory.", "counter",
             s.agents_created),
            ("agentfactory_sandbox_runs_total", "Tasks run in the sandbox.", "counter",
             s.sandbox_runs),
        ]  # fmt: skip
        lines: list[str] = []
        for name, help_, kind, value in singles:
            lines += _gauge(name, help_, kind, [("", float(value))])
        failures = [(_labels(("kind",), (k,)), v) for k, v in sorted(s.sandbox_failures.items())]
        lines += _gauge(
            "agentfactory_sandbox_failures_total", "Sandbox failures by kind.", "counter", failures
        )
        for metric in (self.publishes, self.downloads, self.installs):
            lines += metric.render()
        lines += self.requests.render()
        return "\n".join(lines) + "\n"
