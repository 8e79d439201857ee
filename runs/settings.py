"""Settings of the run service: one small dataclass of limits, read from the environment once.

`RunSettings.from_env` reads `AGENTFACTORY_RUN_*` variables (a bad value is a `SettingsError`
naming the variable); nothing reads the environment afterwards. Defaults suit one machine: two
worker processes, 60 s per run (at most an hour), 8 runs queued or running and 1000 runs an hour
per account, and the embedded engine (`engine="local"`). `engine="procrastinate"` hands runs to
`agentfactory worker` processes through a procrastinate queue, which lives in PostgreSQL:
`require_database` refuses it, in one line, for any other database.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.errors import SettingsError

MAX_TIMEOUT_S = 3600.0
ENGINES = ("local", "procrastinate")


@dataclass(frozen=True)
class RunSettings:
    """Limits of the run service (see docs/runs.md)."""

    workers: int = 2
    """Worker processes of the embedded engine (`LocalEngine`)."""
    default_timeout_s: float = 60.0
    max_timeout_s: float = MAX_TIMEOUT_S
    grace_s: float = 1.0
    """How long past its deadline a run's worker may stay silent before it is killed."""
    lease_s: float = 30.0
    """A running run's lease; its holder renews it every third of this while the run goes on."""
    max_attempts: int = 3
    """Deliveries of one run before a lost worker fails it with `worker_lost`."""
    max_concurrent: int = 8
    """Runs one account may have queued or running at once (0: no limit)."""
    max_per_hour: int = 1000
    """Runs one account may submit in any hour (0: no limit)."""
    sweep_s: float = 1.0
    """How often the engine looks for expired leases and runs queued by other processes."""
    engine: str = "local"
    """What executes runs: "local" (worker processes of the API server, `LocalEngine`) or
    "procrastinate" (`agentfactory worker` processes, `runs.distributed`)."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, bool, str]] = [
            ("workers", self.workers, self.workers >= 1, "must be at least 1"),
            ("max_timeout_s", self.max_timeout_s, 0 < self.max_timeout_s <= MAX_TIMEOUT_S,
             f"must be above 0 and at most {MAX_TIMEOUT_S:g}"),
            ("default_timeout_s", self.default_timeout_s,
             0 < self.default_timeout_s <= self.max_timeout_s, "must be above 0, at most the max"),
            ("grace_s", self.grace_s, 0 <= self.grace_s <= 60, "must be 0 to 60"),
            ("lease_s", self.lease_s, 0 < self.lease_s <= 3600, "must be above 0, at most 3600"),
            ("max_attempts", self.max_attempts, self.max_attempts >= 1, "must be at least 1"),
            ("max_concurrent", self.max_concurrent, self.max_concurrent >= 0, "must be >= 0"),
            ("max_per_hour", self.max_per_hour, self.max_per_hour >= 0, "must be >= 0"),
            ("sweep_s", self.sweep_s, 0 < self.sweep_s <= 60, "must be above 0, at most 60"),
            ("engine", self.engine, self.engine in ENGINES, f"must be one of {', '.join(ENGINES)}"),
        ]
        for name, value, ok, reason in checks:
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise SettingsError(name, value, reason)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunSettings:
        env = os.environ if env is None else env
        parsers: dict[str, tuple[str, Callable[[str], object]]] = {
            "RUN_WORKERS": ("workers", int),
            "RUN_TIMEOUT": ("default_timeout_s", float),
            "RUN_MAX_TIMEOUT": ("max_timeout_s", float),
            "RUN_GRACE": ("grace_s", float),
            "RUN_LEASE": ("lease_s", float),
            "RUN_MAX_ATTEMPTS": ("max_attempts", int),
            "RUN_MAX_CONCURRENT": ("max_concurrent", int),
            "RUN_MAX_PER_HOUR": ("max_per_hour", int),
            "RUN_ENGINE": ("engine", str),
        }
        values: dict[str, object] = {}
        for suffix, (name, parse) in parsers.items():
            text = env.get(f"AGENTFACTORY_{suffix}")
            if not text:
                continue
            try:
                values[name] = parse(text)
            except ValueError:
                raise SettingsError(
                    f"AGENTFACTORY_{suffix}", text, "not a number", "the environment"
                ) from None
        try:
            return cls(**values)  # type: ignore[arg-type]  # keys are the dataclass's fields
        except SettingsError as exc:
            variable = next(f"AGENTFACTORY_{s}" for s, (n, _) in parsers.items() if n == exc.field)
            raise SettingsError(variable, exc.value, exc.reason, "the environment") from None

    def require_database(self, database_url: str | None) -> None:
        """Refuse an engine the database cannot carry (procrastinate needs PostgreSQL)."""
        if self.engine == "procrastinate" and not (database_url or "").startswith("postgresql"):
            raise SettingsError(
                "AGENTFACTORY_RUN_ENGINE", self.engine,
                "needs a PostgreSQL database: set AGENTFACTORY_DATABASE_URL="
                "postgresql+psycopg://USER:PASSWORD@HOST/DB", "the environment",
            )
