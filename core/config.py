"""Settings of one `AgentFactory`, and where an operator sets them.

`FactorySettings` is a plain dataclass of limits and choices, validated when built: an impossible
value raises `SettingsError` naming the field, so a bad configuration fails at start-up rather than
at the first agent. Built directly (tests, libraries) it has no preload and no hot reload.

`FactorySettings.from_env()` is what `agentfactory` commands and `serve` use. Precedence, lowest
first: the operator defaults (`environment` development or production picks the template cache
TTL, 60 s or 600 s; `DEFAULT_PRELOAD` is preloaded), then the `[factory]` table of the config file
(`$AGENTFACTORY_CONFIG`, else `$AGENTFACTORY_HOME/config.toml`), then `AGENTFACTORY_*` variables.
A bad value raises `SettingsError` whose one-line message names the key and where it was set (the
file's path or the environment); an unknown key in `[factory]` is an error too, because a typo
would otherwise be silently ignored. Other tables of the file belong to other parts and are left
alone. `docs/configuration.md` lists every key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import ConfigFileError, SettingsError, did_you_mean

SandboxPolicy = Literal["always", "high-risk", "never"]
Environment = Literal["development", "production"]

ENV_CONFIG = "AGENTFACTORY_CONFIG"
CONFIG_NAME = "config.toml"
CONFIG_TABLE = "factory"
ENV_TEMPLATE_PATH = "AGENTFACTORY_TEMPLATE_PATH"
ENV_ALLOWED_TOOLS = "AGENTFACTORY_ALLOWED_TOOLS"
ENV_SANDBOX_POLICY = "AGENTFACTORY_SANDBOX_POLICY"
ENV_TRUSTED_PUBLISHERS = "AGENTFACTORY_TRUSTED_PUBLISHERS"

# The operator defaults: templates worth resolving before the first request, and the template
# cache TTL per environment (short while templates are being edited, long in production).
DEFAULT_PRELOAD: tuple[str, ...] = ("documentaliste", "genie_logiciel", "hardware")
DEFAULT_CACHE_TTL_S: dict[str, float] = {"development": 60.0, "production": 600.0}
# anyio's own default for the server's thread limiter, so `serve` keeps its former capacity.
DEFAULT_WORKER_THREADS = 40
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass
class FactorySettings:
    """What an operator configures. Later `template_dirs` override earlier ones and built-ins."""

    template_dirs: list[Path] = field(default_factory=list)
    environment: Environment = "development"
    cache_size: int = 256
    cache_ttl_s: float = DEFAULT_CACHE_TTL_S["development"]
    preload: list[str] = field(default_factory=list)
    hot_reload: bool = False
    # Threads for blocking work off an event loop: `acreate_agent`'s cold resolutions and, in
    # `serve`, the registry queries.
    worker_threads: int = DEFAULT_WORKER_THREADS
    allowed_tools: frozenset[str] = frozenset()
    sandbox_policy: SandboxPolicy = "always"
    # Namespaces whose packages count as from a verified publisher under the "high-risk" policy
    # (a valid signature proves who published, not that they deserve trust: the operator says so).
    trusted_publishers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.template_dirs = [Path(p).expanduser() for p in self.template_dirs]
        self.allowed_tools = frozenset(t.strip().lower() for t in self.allowed_tools)
        self.trusted_publishers = frozenset(n.strip().lower() for n in self.trusted_publishers)
        if self.environment not in get_args(Environment):
            raise SettingsError(
                "environment", self.environment, f"must be one of {get_args(Environment)}"
            )
        if self.cache_size < 1:
            raise SettingsError("cache_size", self.cache_size, "must be at least 1")
        if not self.cache_ttl_s > 0:
            raise SettingsError("cache_ttl_s", self.cache_ttl_s, "must be a positive number")
        if self.worker_threads < 1:
            raise SettingsError("worker_threads", self.worker_threads, "must be at least 1")
        if self.sandbox_policy not in get_args(SandboxPolicy):
            raise SettingsError(
                "sandbox_policy", self.sandbox_policy, f"must be one of {get_args(SandboxPolicy)}"
            )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, config_file: Path | None = None
    ) -> FactorySettings:
        """Operator defaults, then the config file, then the environment (see the module doc).

        `config_file` overrides where the file is looked for; a file named explicitly (here or by
        `$AGENTFACTORY_CONFIG`) must exist, the default one may be absent."""
        env = os.environ if env is None else env
        path, required = _config_location(env, config_file)
        values: dict[str, Any] = {}
        where: dict[str, tuple[str, str]] = {}  # field -> (key as written, source)
        for name, raw in _read_table(path, required).items():
            key = f"{CONFIG_TABLE}.{name}"
            values[name] = _coerce(name, raw, key, str(path), base=path.parent)
            where[name] = (key, str(path))
        for name, key in _ENV_KEYS.items():
            raw = env.get(key)
            if raw is None or (raw == "" and name != "preload"):
                continue
            values[name] = _coerce(name, raw, key, "the environment", base=Path())
            where[name] = (key, "the environment")
        environment = values.get("environment", "development")
        if environment in DEFAULT_CACHE_TTL_S:
            values.setdefault("cache_ttl_s", DEFAULT_CACHE_TTL_S[environment])
        values.setdefault("preload", list(DEFAULT_PRELOAD))
        try:
            return cls(**values)
        except SettingsError as exc:  # a range check: say which key and where it was set
            key, source = where.get(exc.field, (exc.field, "the defaults"))
            raise SettingsError(key, exc.value, exc.reason, source) from None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file is read from: `$AGENTFACTORY_CONFIG`, else the home's config.toml."""
    return _config_location(os.environ if env is None else env, None)[0]


def _config_location(env: Mapping[str, str], explicit: Path | None) -> tuple[Path, bool]:
    if explicit is not None:
        return Path(explicit).expanduser(), True
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser(), True
    if env.get("AGENTFACTORY_HOME"):  # spares the CLI importing platformdirs
        return Path(env["AGENTFACTORY_HOME"]).expanduser() / CONFIG_NAME, False
    from core.paths import agentfactory_home

    return agentfactory_home() / CONFIG_NAME, False


def _read_table(path: Path, required: bool) -> dict[str, Any]:
    """The `[factory]` table of the file at `path`, keys checked; {} without a file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigFileError(str(path), "no such file") from None
        return {}
    except OSError as exc:
        raise ConfigFileError(str(path), exc.strerror or str(exc)) from None
    import tomllib  # only when there is a file: most runs have none

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(str(path), f"not valid TOML: {exc}") from None
    table = document.get(CONFIG_TABLE, {})
    if not isinstance(table, dict):
        raise ConfigFileError(str(path), f"{CONFIG_TABLE!r} must be a table ([{CONFIG_TABLE}])")
    for key in table:
        if key not in _COERCE:
            hint = did_you_mean(key, _COERCE)
            raise SettingsError(
                f"{CONFIG_TABLE}.{key}", table[key], f"no such setting{hint}", str(path)
            )
    return table


# ----------------------------------------------------------------- parsing one value

# A value comes either as text (an environment variable) or as a TOML value; each parser accepts
# both and raises ValueError with the reason.


def _int(raw: object, _base: Path) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise ValueError("must be a whole number")


def _seconds(raw: object, _base: Path) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            pass
    raise ValueError("must be a number of seconds")


def _bool(raw: object, _base: Path) -> bool:
    if isinstance(raw, bool):
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else ""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("must be true or false (1/0, yes/no, on/off)")


def _words(raw: object, separator: str = ",") -> list[str]:
    if isinstance(raw, str):
        return [w.strip() for w in raw.split(separator) if w.strip()]
    if isinstance(raw, list) and all(isinstance(w, str) for w in raw):
        return [w.strip() for w in raw if w.strip()]
    raise ValueError("must be a list of strings")


def _names(raw: object, _base: Path) -> list[str]:
    return _words(raw)


def _name_set(raw: object, _base: Path) -> frozenset[str]:
    return frozenset(_words(raw))


def _dirs(raw: object, base: Path) -> list[Path]:
    """Relative directories are taken from the config file's folder (or the working directory)."""
    return [base / Path(p).expanduser() for p in _words(raw, os.pathsep)]


def _choice(choices: tuple[str, ...]) -> Callable[[object, Path], str]:
    def parse(raw: object, _base: Path) -> str:
        if not isinstance(raw, str) or raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw

    return parse


_COERCE: dict[str, Callable[[object, Path], object]] = {
    "template_dirs": _dirs,
    "environment": _choice(get_args(Environment)),
    "cache_size": _int,
    "cache_ttl_s": _seconds,
    "preload": _names,
    "hot_reload": _bool,
    "worker_threads": _int,
    "allowed_tools": _name_set,
    "sandbox_policy": _choice(get_args(SandboxPolicy)),
    "trusted_publishers": _name_set,
}
_ENV_KEYS: dict[str, str] = {
    "template_dirs": ENV_TEMPLATE_PATH,
    "environment": "AGENTFACTORY_ENVIRONMENT",
    "cache_size": "AGENTFACTORY_CACHE_SIZE",
    "cache_ttl_s": "AGENTFACTORY_CACHE_TTL",
    "preload": "AGENTFACTORY_PRELOAD",
    "hot_reload": "AGENTFACTORY_HOT_RELOAD",
    "worker_threads": "AGENTFACTORY_WORKER_THREADS",
    "allowed_tools": ENV_ALLOWED_TOOLS,
    "sandbox_policy": ENV_SANDBOX_POLICY,
    "trusted_publishers": ENV_TRUSTED_PUBLISHERS,
}


def _coerce(name: str, raw: object, key: str, source: str, *, base: Path) -> object:
    try:
        return _COERCE[name](raw, base)
    except ValueError as exc:
        raise SettingsError(key, raw, str(exc), source) from None
