"""The deployment's model configuration: aliases, providers, prices, budgets, DLP, retries.

Read from `$AGENTFACTORY_HOME/models.toml` (or the file `$AGENTFACTORY_MODELS` names); without
that file, from the `[models]` table of the config file `core.config` reads. Both have the same
keys (docs/models.md):

    timeout_s = 30          # per attempt
    retries = 2             # further attempts on 429, 5xx or no answer, per model
    max_tokens = 1024       # output cap when a template sets none
    dlp = "mask"            # off | mask | refuse
    [aliases.fast]
    models = ["openai:gpt-4o-mini", "vllm:qwen2.5-7b"]   # tried in order
    [providers.vllm]
    api_base = "http://10.0.0.5:8000/v1"                 # an OpenAI-compatible server
    key_env = "VLLM_API_KEY"                             # optional
    [prices."gpt-4o-mini"]
    input_per_1k = 0.00015
    output_per_1k = 0.0006
    [budgets]
    call_tokens = 20000
    account_day_cost = 5.0

Invariants: a loaded `ModelsConfig` is valid — every key known (a typo is a `ModelsConfigError`
naming it and the file, never silently ignored), numbers in range, every alias has at least one
model; the file holds no keys, only the *names* of environment variables or of entries in
`llm`'s key store. No file at all is a valid, empty configuration: prompt agents then fail with
`NoProviderConfigured`, everything else runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from core.errors import did_you_mean
from models.errors import ModelsConfigError
from models.types import DLP_POLICIES, DlpPolicy

_N = TypeVar("_N", int, float)

ENV_MODELS = "AGENTFACTORY_MODELS"
FILE_NAME = "models.toml"
TABLE = "models"


@dataclass(frozen=True, slots=True)
class Target:
    """One concrete model: a provider name and the provider's model id."""

    provider: str
    model: str

    @classmethod
    def parse(cls, text: str, default_provider: str = "llm") -> Target:
        provider, sep, model = text.partition(":")
        return cls(provider, model) if sep and provider and model else cls(default_provider, text)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """A provider section. With `api_base` it is an OpenAI-compatible server (vLLM, llama.cpp,
    Ollama...); `key_env` / `key_name` name where its key is (environment / llm key store)."""

    name: str
    api_base: str | None = None
    key_env: str | None = None
    key_name: str | None = None


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    targets: tuple[Target, ...]
    timeout_s: float | None = None
    retries: int | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1,000 tokens."""

    input_per_1k: float
    output_per_1k: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_1k + output_tokens * self.output_per_1k) / 1000


@dataclass(frozen=True, slots=True)
class Budgets:
    """Limits in tokens and in USD; None is no limit. `*_day` limits count since 00:00 UTC."""

    call_tokens: int | None = None
    call_cost: float | None = None
    run_tokens: int | None = None
    run_cost: float | None = None
    agent_day_tokens: int | None = None
    agent_day_cost: float | None = None
    account_day_tokens: int | None = None
    account_day_cost: float | None = None


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    aliases: dict[str, Alias] = field(default_factory=dict)
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    budgets: Budgets = field(default_factory=Budgets)
    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    max_tokens: int = 1024
    dlp: DlpPolicy = "off"
    source: str = "the defaults"

    def price(self, target: Target) -> Price | None:
        """The price of `target`: listed as `provider:model`, else as `model`."""
        return self.prices.get(str(target)) or self.prices.get(target.model)


_TOP = ("aliases", "providers", "prices", "budgets", "timeout_s", "retries", "backoff_s",
        "backoff_max_s", "max_tokens", "dlp")  # fmt: skip
_ALIAS = ("models", "timeout_s", "retries")
_PROVIDER = ("api_base", "key_env", "key_name")
_PRICE = ("input_per_1k", "output_per_1k")
_BUDGETS = tuple(f.name for f in fields(Budgets))


def config_location(env: Mapping[str, str] | None = None) -> tuple[Path, str | None]:
    """`(file, table)`: the models file when it exists (table None), else the config file's
    `[models]` table."""
    env = os.environ if env is None else env
    if env.get(ENV_MODELS):
        return Path(env[ENV_MODELS]).expanduser(), None
    from core.config import config_path

    config = config_path(env)
    own = config.parent / FILE_NAME
    if env.get("AGENTFACTORY_HOME"):
        own = Path(env["AGENTFACTORY_HOME"]).expanduser() / FILE_NAME
    return (own, None) if own.is_file() else (config, TABLE)


def load_config(env: Mapping[str, str] | None = None) -> ModelsConfig:
    """The deployment's configuration (see the module doc); empty when there is no file."""
    path, table = config_location(env)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if table is None:  # named by $AGENTFACTORY_MODELS
            raise ModelsConfigError(ENV_MODELS, str(path), "no such file",
                                    "the environment") from None
        return ModelsConfig()
    except OSError as exc:
        raise ModelsConfigError("file", str(path), exc.strerror or str(exc), str(path)) from None
    import tomllib

    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelsConfigError("file", str(path), f"not valid TOML: {exc}", str(path)) from None
    if table is not None:
        document = document.get(table, {})
    return parse_config(document, str(path), prefix=f"{table}." if table else "")


def parse_config(document: Any, source: str, prefix: str = "") -> ModelsConfig:
    """A `ModelsConfig` from a parsed TOML table; `ModelsConfigError` for anything wrong."""
    doc = _table(document, prefix.rstrip(".") or "models", source)
    _known(doc, _TOP, prefix, source)
    defaults = ModelsConfig()
    providers = {
        name: ProviderSettings(name, **_strings(_table(v, f"{prefix}providers.{name}", source),
                                                _PROVIDER, f"{prefix}providers.{name}.", source))
        for name, v in _table(doc.get("providers", {}), f"{prefix}providers", source).items()
    }
    aliases = {
        name: _alias(name, value, f"{prefix}aliases.{name}", source)
        for name, value in _table(doc.get("aliases", {}), f"{prefix}aliases", source).items()
    }
    prices = {}
    for name, value in _table(doc.get("prices", {}), f"{prefix}prices", source).items():
        where = f"{prefix}prices.{name}"
        entry = _table(value, where, source)
        _known(entry, _PRICE, f"{where}.", source)
        prices[name] = Price(*(_number(entry.get(k, 0.0), f"{where}.{k}", source, float)
                               for k in _PRICE))
    budget_doc = _table(doc.get("budgets", {}), f"{prefix}budgets", source)
    _known(budget_doc, _BUDGETS, f"{prefix}budgets.", source)
    limits: dict[str, Any] = {
        key: _number(value, f"{prefix}budgets.{key}", source,
                     int if key.endswith("tokens") else float)
        for key, value in budget_doc.items()
    }
    budgets = Budgets(**limits)
    dlp = doc.get("dlp", defaults.dlp)
    if dlp not in DLP_POLICIES:
        raise ModelsConfigError(f"{prefix}dlp", dlp, f"must be one of {', '.join(DLP_POLICIES)}",
                                source)
    return ModelsConfig(
        aliases=aliases,
        providers=providers,
        prices=prices,
        budgets=budgets,
        timeout_s=_number(doc.get("timeout_s", defaults.timeout_s), f"{prefix}timeout_s", source,
                          float, positive=True),
        retries=_number(doc.get("retries", defaults.retries), f"{prefix}retries", source, int),
        backoff_s=_number(doc.get("backoff_s", defaults.backoff_s), f"{prefix}backoff_s", source,
                          float),
        backoff_max_s=_number(doc.get("backoff_max_s", defaults.backoff_max_s),
                              f"{prefix}backoff_max_s", source, float),
        max_tokens=_number(doc.get("max_tokens", defaults.max_tokens), f"{prefix}max_tokens",
                           source, int, positive=True),
        dlp=cast(DlpPolicy, dlp),
        source=source,
    )


def _alias(name: str, value: Any, where: str, source: str) -> Alias:
    if isinstance(value, list):  # shorthand: fast = ["openai:gpt-4o-mini"]
        value = {"models": value}
    entry = _table(value, where, source)
    _known(entry, _ALIAS, f"{where}.", source)
    models = entry.get("models")
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not models or not all(
        isinstance(m, str) and m for m in models
    ):
        raise ModelsConfigError(f"{where}.models", models,
                                "must be a non-empty list of 'provider:model' names", source)
    timeout = entry.get("timeout_s")
    retries = entry.get("retries")
    return Alias(
        name,
        tuple(Target.parse(m) for m in models),
        None if timeout is None else _number(timeout, f"{where}.timeout_s", source, float,
                                             positive=True),
        None if retries is None else _number(retries, f"{where}.retries", source, int),
    )


def _table(value: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelsConfigError(where, value, "must be a table", source)
    return value


def _known(table: Mapping[str, Any], known: tuple[str, ...], prefix: str, source: str) -> None:
    for key in table:
        if key not in known:
            raise ModelsConfigError(f"{prefix}{key}", table[key],
                                    f"no such setting{did_you_mean(key, known)}", source)


def _strings(
    table: Mapping[str, Any], known: tuple[str, ...], prefix: str, source: str
) -> dict[str, str]:
    _known(table, known, prefix, source)
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ModelsConfigError(f"{prefix}{key}", value, "must be a non-empty string", source)
    return dict(table)


def _number(
    value: Any, where: str, source: str, kind: type[_N], *, positive: bool = False
) -> _N:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int and not isinstance(value, int):
        ok = False
    if not ok or value < 0 or (positive and value == 0):
        what = "a whole number" if kind is int else "a number"
        raise ModelsConfigError(
            where, value, f"must be {'a positive' if positive else 'a non-negative'} "
            f"{what.removeprefix('a ')}", source
        )
    return kind(value)
