"""Settings of the marketplace server: one small, explicit dataclass.

Defaults give a safe single-machine server: SQLite (WAL) and blobs under the Agent Factory home,
127.0.0.1:8000, a 10 MiB upload cap, write limits per account (publisher), a token-minting limit
per account, and sign-ups limited per client address, where no forwarding header is believed
until the operator names the proxies that send them (`trusted_proxies`, default none). `from_env`
reads the `AGENTFACTORY_*` variables so `agentfactory serve`, tests and benchmarks configure the
same object; a bad value is a `SettingsError` naming the variable; nothing reads the environment
after the settings are built.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import SettingsError
from core.paths import agentfactory_home
from registry.blobs import parse_blob_url
from runs.settings import RunSettings

SandboxPolicy = Literal["always", "high-risk", "never"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` writes at once, refilled at `per_second`. `burst=0` disables it."""

    burst: int
    per_second: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """`"30/60"` means 30 writes per 60 seconds (burst 30); `"0"` disables the limit."""
        if text.strip() == "0":
            return cls(0, 0.0)
        count, _, window = text.partition("/")
        try:
            burst, seconds = int(count), float(window or "1")
        except ValueError:
            raise ValueError(f"rate limit {text!r} is not COUNT/SECONDS") from None
        if burst < 0 or seconds <= 0:
            raise ValueError(f"rate limit {text!r} must be a positive COUNT/SECONDS")
        return cls(burst, burst / seconds)

    @property
    def enabled(self) -> bool:
        return self.burst > 0


def parse_networks(text: str) -> tuple[Network, ...]:
    """`"10.0.0.1, 192.168.0.0/16, ::1"`: addresses and CIDR blocks, comma-separated."""
    networks: list[Network] = []
    for part in text.split(","):
        if part := part.strip():
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR block") from None
    return tuple(networks)


MAX_SESSION_TTL_S = 366 * 24 * 3600.0


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds <= MAX_SESSION_TTL_S:  # also refuses NaN and infinity
        raise ValueError(f"must be a number of seconds above 0, at most {MAX_SESSION_TTL_S:.0f}")
    return seconds


MAX_VETTING_S = 3600.0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number above 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _vetting_seconds(text: str, allow_zero: bool = False) -> float:
    seconds = float(text)
    low_ok = seconds >= 0 if allow_zero else seconds > 0
    if not (low_ok and seconds <= MAX_VETTING_S):  # also refuses NaN and infinity
        low = "0 or more" if allow_zero else "above 0"
        raise ValueError(f"must be a number of seconds {low}, at most {MAX_VETTING_S:.0f}")
    return seconds


def _blob_url(text: str) -> str:
    parse_blob_url(text)
    return text


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


def _redirect_seconds(text: str) -> float:
    seconds = float(text)
    if not 1 <= seconds <= 7 * 24 * 3600:  # S3 signs URLs for at most 7 days
        raise ValueError("must be a number of seconds from 1 to 604800")
    return seconds


def _grace_seconds(text: str) -> float:
    seconds = float(text)
    if not 0 <= seconds <= 30 * 24 * 3600:  # also refuses NaN and infinity
        raise ValueError("must be a number of seconds from 0 to 2592000")
    return seconds


def _limit_store(text: str) -> str:
    if text not in ("auto", "memory", "database"):
        raise ValueError("must be auto, memory or database")
    return text


def _default_home() -> Path:
    return agentfactory_home()


@dataclass
class ServerSettings:
    """Everything `create_app` needs. Paths are resolved once, at construction."""

    home: Path = field(default_factory=_default_home)
    database_url: str | None = None  # None: SQLite at home/registry.db
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 10 * 1024 * 1024
    # JSON bodies (registration, reviews, keys) are small; anything larger is a mistake or abuse.
    max_json_bytes: int = 256 * 1024
    # Write budgets belong to the account (publisher), whichever of its tokens is used.
    publish_rate: RateLimit = field(default_factory=lambda: RateLimit(30, 30 / 60))
    review_rate: RateLimit = field(default_factory=lambda: RateLimit(20, 20 / 60))
    # Minting tokens has its own per-account budget, so new tokens cannot be farmed either.
    token_rate: RateLimit = field(default_factory=lambda: RateLimit(10, 10 / 3600))
    # Registration needs no token, so it is limited per client address: no mass sign-ups.
    register_rate: RateLimit = field(default_factory=lambda: RateLimit(20, 20 / 3600))
    # Peers whose X-Forwarded-For / Forwarded / X-Real-IP headers are believed (see
    # `marketplace.server.client_address`); nobody's by default.
    trusted_proxies: tuple[Network, ...] = ()
    # How long a browser stays signed in (the server-side session's lifetime).
    web_session_ttl_s: float = 7 * 24 * 3600.0
    sandbox_policy: SandboxPolicy = "always"
    template_dirs: list[Path] = field(default_factory=list)
    # Publish the built-in agents under `builtin/` on start (idempotent).
    bootstrap: bool = True
    # Run each upload's examples in the sandbox before publishing it; refuse it if they fail.
    vet_uploads: bool = True
    # Bounds of that vetting (`marketplace.server.vetting`): fuel and deadline of each example,
    # the wall-clock budget of one upload's examples together, and how many uploads are vetted
    # at once per account and in all (0: the sandbox pool's size). An upload beyond those waits
    # up to `vet_queue_s` for a slot (never beyond its account's own cap), then gets 429.
    vet_example_fuel: int = 10_000_000_000
    vet_example_timeout_s: float = 5.0
    vet_upload_budget_s: float = 20.0
    vet_per_publisher: int = 1
    vet_concurrency: int = 0
    vet_queue_s: float = 5.0
    # Where rate budgets live: "memory" (this process), "database" (shared by every process),
    # or "auto": the database when it is PostgreSQL or `processes` > 1 (`ratelimit.make_limiter`).
    rate_limit_store: Literal["auto", "memory", "database"] = "auto"
    # API processes serving this home on this machine (`agentfactory serve --workers N`).
    processes: int = 1
    # Package-detail responses kept in memory; other processes' writes reach them through the
    # database (`marketplace.server.invalidation`); `cache_ttl_s` only bounds an entry's age.
    detail_cache_size: int = 2048
    cache_ttl_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    # Seconds since the epoch, for what is stored with a date (web sessions' expiry).
    wall_clock: Callable[[], float] = time.time
    # The run service: worker processes, deadlines, leases, per-account quotas (`runs.settings`).
    runs: RunSettings = field(default_factory=RunSettings)
    # Blobs: None keeps them under `home/blobs`; `s3://bucket/prefix` puts them in S3-compatible
    # object storage (`registry.blobs_s3`) at `s3_endpoint` (None: AWS) in `s3_region` (None:
    # boto3's own default). Credentials come from the standard AWS variables, never from here.
    blob_url: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    # Downloads answer 307 to a pre-signed URL of the blob, valid `blob_redirect_ttl_s` (S3 only).
    blob_redirect: bool = False
    blob_redirect_ttl_s: float = 300.0
    # Orphan blobs younger than this are never collected: a publish on another process may not
    # have committed its release yet (`registry.blobs.cleanup_orphans`).
    blob_grace_s: float = 3600.0

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser()
        self.trusted_proxies = tuple(self.trusted_proxies)
        if not 0 < self.web_session_ttl_s <= MAX_SESSION_TTL_S:
            raise ValueError(f"web_session_ttl_s must be above 0 and at most {MAX_SESSION_TTL_S}")
        if self.max_upload_bytes <= 0:
            raise ValueError("max_upload_bytes must be positive")
        if self.vet_example_fuel <= 0 or self.vet_per_publisher <= 0 or self.vet_concurrency < 0:
            raise ValueError("vetting fuel and per-publisher cap must be above 0, concurrency >= 0")
        if not (0 < self.vet_example_timeout_s <= MAX_VETTING_S
                and 0 < self.vet_upload_budget_s <= MAX_VETTING_S
                and 0 <= self.vet_queue_s <= MAX_VETTING_S):
            raise ValueError(f"vetting times must be in seconds, at most {MAX_VETTING_S:.0f}")
        if self.blob_url is not None:
            parse_blob_url(self.blob_url)
        if self.s3_endpoint is not None and not self.s3_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ValueError(f"s3_endpoint {self.s3_endpoint!r} is not an http(s) URL")
        if self.blob_redirect and self.blob_url is None:
            raise ValueError("blob_redirect needs an s3:// blob_url")
        if not (0 < self.blob_redirect_ttl_s <= 7 * 24 * 3600 and self.blob_grace_s >= 0):
            raise ValueError("blob_redirect_ttl_s must be 1 s to 7 days, blob_grace_s >= 0")
        if self.rate_limit_store not in ("auto", "memory", "database") or self.processes < 1:
            raise ValueError("rate_limit_store must be auto|memory|database, processes >= 1")
        if self.sandbox_policy not in ("always", "high-risk", "never"):
            raise ValueError(
                f"sandbox policy {self.sandbox_policy!r} is not always|high-risk|never"
            )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        """Settings from `AGENTFACTORY_*` variables, then explicit `overrides` (flags) on top."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("AGENTFACTORY_HOME"):
            values["home"] = Path(env["AGENTFACTORY_HOME"])
        if env.get("AGENTFACTORY_DATABASE_URL"):
            values["database_url"] = env["AGENTFACTORY_DATABASE_URL"]
        parsers: dict[str, tuple[str, Callable[[str], object]]] = {
            "MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
            "PUBLISH_RATE": ("publish_rate", RateLimit.parse),
            "REVIEW_RATE": ("review_rate", RateLimit.parse),
            "TOKEN_RATE": ("token_rate", RateLimit.parse),
            "REGISTER_RATE": ("register_rate", RateLimit.parse),
            "TRUSTED_PROXIES": ("trusted_proxies", parse_networks),
            "SESSION_TTL": ("web_session_ttl_s", _seconds),
            "VET_EXAMPLE_FUEL": ("vet_example_fuel", _positive_int),
            "VET_EXAMPLE_TIMEOUT": ("vet_example_timeout_s", _vetting_seconds),
            "VET_UPLOAD_BUDGET": ("vet_upload_budget_s", _vetting_seconds),
            "VET_PER_PUBLISHER": ("vet_per_publisher", _positive_int),
            "VET_CONCURRENCY": ("vet_concurrency", _count),
            "VET_QUEUE": ("vet_queue_s", lambda text: _vetting_seconds(text, allow_zero=True)),
            "BLOB_URL": ("blob_url", _blob_url),
            "S3_ENDPOINT": ("s3_endpoint", _http_url),
            "S3_REGION": ("s3_region", str.strip),
            "BLOB_REDIRECT_TTL": ("blob_redirect_ttl_s", _redirect_seconds),
            "BLOB_GRACE": ("blob_grace_s", _grace_seconds),
            "RATE_LIMIT_STORE": ("rate_limit_store", _limit_store),
            "PROCESSES": ("processes", _positive_int),
        }
        for suffix, (name, parse) in parsers.items():
            text = env.get(f"AGENTFACTORY_{suffix}")
            if text:
                try:
                    values[name] = parse(text)
                except ValueError as exc:
                    raise SettingsError(
                        f"AGENTFACTORY_{suffix}", text, str(exc), "the environment"
                    ) from None
        if env.get("AGENTFACTORY_SANDBOX_POLICY"):
            values["sandbox_policy"] = env["AGENTFACTORY_SANDBOX_POLICY"]
        for name, key in (("bootstrap", "BOOTSTRAP"), ("vet_uploads", "VET_UPLOADS"),
                          ("blob_redirect", "BLOB_REDIRECT")):
            if env.get(f"AGENTFACTORY_{key}"):
                values[name] = env[f"AGENTFACTORY_{key}"].lower() not in {"0", "false", "no"}
        if values.get("blob_redirect") and "blob_url" not in values:
            raise SettingsError("AGENTFACTORY_BLOB_REDIRECT", env["AGENTFACTORY_BLOB_REDIRECT"],
                                "needs AGENTFACTORY_BLOB_URL=s3://...", "the environment")
        values["runs"] = RunSettings.from_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]  # keys are the dataclass's own fields
