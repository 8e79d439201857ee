"""`agentfactory.lock`: what is installed, exactly, and the publisher keys pinned on first use.

Invariants:
- the lockfile lives at `$AGENTFACTORY_HOME/agentfactory.lock` and records, per installed agent,
  name, version, archive sha256, signing key id (and its public key, so another machine can
  reinstall the same bytes with the same trust decision), requirements, the vetting summary
  and the content hash of every template from elsewhere its templates extend (`lineage`);
- both files are replaced atomically (write to a temp file in the same directory, then rename),
  so a reader (a running server's factory) never sees half a file;
- key pins live apart in `$AGENTFACTORY_HOME/keys.json`, one per package namespace (the
  publisher that signs there and its key): uninstalling an agent keeps the pin, so reinstalling
  later cannot silently accept a different key or publisher. Keys their owner revoked are
  remembered there too and never trusted again, whatever a registry says later.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.client.errors import LockfileError

LOCK_NAME = "agentfactory.lock"
PINS_NAME = "keys.json"
FORMAT = 1


class VettingSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")

    passed: bool
    status: str = ""  # "passed", "failed" or "unvetted" (no examples to run)
    examples: int = 0
    failures: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0
    detail: str = ""
    report: dict[str, Any] | None = None  # the sandbox's full report (`VettingReport.to_json`)


class LineagePin(BaseModel):
    """A template of the entry's package extends `parent`, a template it does not ship: a
    built-in (`package` "") or one of installed `package` `version`. `hash` is the parent's
    resolved content hash when the entry was installed (`marketplace.client.lineage`)."""

    model_config = ConfigDict(extra="ignore")

    template: str
    parent: str
    hash: str
    package: str = ""
    version: str = ""


class LockEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    version: str
    digest: str
    size: int
    key_id: str
    public_key: str  # base64 raw Ed25519 key the signature was verified with
    publisher: str
    requires: dict[str, str] = Field(default_factory=dict)
    requested: bool = True  # False when installed only as another agent's dependency
    vetting: VettingSummary
    installed_at: str = ""
    lineage: list[LineagePin] = Field(default_factory=list)  # cross-package `extends`, pinned


class Lockfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = FORMAT
    agents: dict[str, LockEntry] = Field(default_factory=dict)


class KeyPin(BaseModel):
    key_id: str
    public_key: str
    pinned_at: str
    rotated_from: list[str] = Field(default_factory=list)
    publisher: str = ""  # who signs in the namespace: the name rotation statements carry


class PinStore(BaseModel):
    namespaces: dict[str, KeyPin] = Field(default_factory=dict)  # normalized namespace -> pin
    revoked: dict[str, str] = Field(default_factory=dict)  # key id -> its publisher
    publishers: dict[str, KeyPin] = Field(default_factory=dict)  # older clients' per-publisher pins


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def lock_path(home: Path) -> Path:
    return home / LOCK_NAME


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LockfileError(str(path), f"not valid JSON: {exc}") from None


def _write(path: Path, model: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(model.model_dump_json(indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_lock(home: Path) -> Lockfile:
    path = lock_path(home)
    data = _read(path)
    if data is None:
        return Lockfile()
    try:
        lock = Lockfile.model_validate(data)
    except ValidationError as exc:
        raise LockfileError(str(path), _first_error(exc)) from None
    if lock.format != FORMAT:
        raise LockfileError(str(path), f"unsupported format {lock.format} (expected {FORMAT})")
    return lock


def write_lock(home: Path, lock: Lockfile) -> None:
    _write(lock_path(home), lock)


def read_pins(home: Path) -> PinStore:
    path = home / PINS_NAME
    data = _read(path)
    if data is None:
        return PinStore()
    try:
        return PinStore.model_validate(data)
    except ValidationError as exc:
        raise LockfileError(str(path), _first_error(exc)) from None


def write_pins(home: Path, pins: PinStore) -> None:
    _write(home / PINS_NAME, pins)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
