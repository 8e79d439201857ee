"""Client configuration: which registry to talk to, with which token, and where the key lives.

Precedence, highest first: explicit values (CLI flags), the environment (`AGENTFACTORY_URL`,
`AGENTFACTORY_TOKEN`), then `$AGENTFACTORY_HOME/config.json`, then the default URL
http://127.0.0.1:8000. The config file holds a token, so it is always written with mode 0600
(created that way, never chmod-ed after the secret is on disk) and replaced atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.paths import agentfactory_home
from marketplace.client.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_URL = "AGENTFACTORY_URL"
ENV_TOKEN = "AGENTFACTORY_TOKEN"
CONFIG_NAME = "config.json"
KEY_NAME = "signing.key"


@dataclass(frozen=True)
class ClientConfig:
    """The resolved settings of one CLI invocation."""

    url: str
    token: str | None
    home: Path
    publisher: str | None = None
    namespace: str | None = None
    key_path: Path | None = None

    @property
    def signing_key_path(self) -> Path:
        return self.key_path or self.home / KEY_NAME


def config_path(home: Path | None = None) -> Path:
    return (home or agentfactory_home()) / CONFIG_NAME


def read_config_file(home: Path) -> dict[str, Any]:
    """The stored settings, or {} when there is no file yet."""
    path = home / CONFIG_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a JSON object")
    return data


def load_config(
    url: str | None = None, token: str | None = None, home: Path | None = None
) -> ClientConfig:
    """Resolve URL and token: flags, then environment, then the config file, then defaults."""
    home = home or agentfactory_home()
    stored = read_config_file(home)
    resolved_url = url or os.environ.get(ENV_URL) or stored.get("url") or DEFAULT_URL
    resolved_token = token or os.environ.get(ENV_TOKEN) or stored.get("token") or None
    key = stored.get("key_path")
    return ClientConfig(
        url=str(resolved_url).rstrip("/"),
        token=str(resolved_token) if resolved_token else None,
        home=home,
        publisher=stored.get("publisher"),
        namespace=stored.get("namespace"),
        key_path=Path(key) if key else None,
    )


def update_config_file(home: Path, **values: Any) -> Path:
    """Merge `values` into config.json (None removes a key); the file is mode 0600."""
    data = read_config_file(home)
    for key, value in values.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = str(value) if isinstance(value, Path) else value
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_NAME
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` atomically to `path` with mode 0600 from the first byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
