"""The revocation list on this machine: fetched from the registry, verified, cached, consulted.

`$AGENTFACTORY_HOME/revocations.json` (`REVOCATIONS_NAME`) holds the registry's signed list
exactly as it was served (payload, signature, key), so it can be verified again at every read.

Invariants:
- nothing unverified is stored or believed: the list's signature must verify with its key, and
  that key must be the one this home pinned the first time it stored a list (trust on first
  use, like publisher keys); every revocation in it must carry a statement that names the same
  package, version, digest and reason and that verifies with the key it names;
- a list is never replaced by an older one: a `serial` below the cached list's is refused
  (a replay that would hide a revocation);
- the file is replaced atomically, so a reader (the server's factory, a run worker) never sees
  half of it; a missing file means "no list yet", a tampered one is an error, never ignored;
- this module imports only pydantic, `cryptography` and the registry's statement helpers, so
  `agentfactory list` and `run` stay light.

What clients do with it: `list`, `run` and `install --locked` warn (one yellow line) about an
installed release that is deprecated or yanked, and refuse (one red line, exit 1) a revoked one;
the installed-agents plugin never loads a revoked release (`installed.py`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.client.errors import RevocationListInvalid

if TYPE_CHECKING:
    from marketplace.client.http import MarketplaceClient
    from marketplace.client.lockfile import LockEntry
    from registry.errors import ReleaseRevoked

REVOCATIONS_NAME = "revocations.json"


class Retired(BaseModel):
    """One entry of the list (the client's reading of `registry.schemas.RetirementEntry`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: str
    digest: str
    level: str  # "deprecated", "yanked" or "revoked"
    reason: str = ""
    successor: str | None = None
    latest: str | None = None
    statement: str | None = None
    signature: str | None = None
    key_id: str | None = None
    public_key: str | None = None
    signer: str | None = None


class _Listing(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    serial: int
    issued_at: str
    entries: list[Retired] = Field(default_factory=list)


class Retirements:
    """A verified list, looked up by installed release."""

    def __init__(self, serial: int, issued_at: str, entries: list[Retired], key_id: str) -> None:
        self.serial = serial
        self.issued_at = issued_at
        self.key_id = key_id
        self._by_release = {(_key(e.name), e.version): e for e in entries}

    def status(self, name: str, version: str, digest: str | None = None) -> Retired | None:
        """The entry of release `name` `version` (and of these bytes, when `digest` is given)."""
        entry = self._by_release.get((_key(name), version))
        if entry is None or (digest is not None and entry.digest != digest):
            return None
        return entry

    def of(self, entry: LockEntry) -> Retired | None:
        return self.status(entry.name, entry.version, entry.digest)


def _key(name: str) -> str:
    from core.errors import AgentFactoryError
    from registry.names import normalize_name

    try:
        return normalize_name(name)
    except AgentFactoryError:  # not a package name: it names nothing in the list
        return name


def _b64(value: str, what: str, path: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RevocationListInvalid(path, f"its {what} is not base64") from None


def verify(document: dict[str, Any], path: str, pinned: bytes | None = None) -> Retirements:
    """The entries of a signed list `document` once every check of the module passes."""
    from registry.errors import RegistryError
    from registry.signing import key_id_for
    from registry.statements import statement_bytes, verify_list, verify_statement

    try:
        payload, signature = str(document["payload"]), str(document["signature"])
        public_key = _b64(str(document["public_key"]), "key", path)
    except (KeyError, TypeError):
        raise RevocationListInvalid(path, "it is not a signed revocation list") from None
    if pinned is not None and public_key != pinned:
        raise RevocationListInvalid(
            path, f"it is signed by key {key_id_for(public_key)}, but this home trusts the "
                  f"registry key {key_id_for(pinned)}")
    try:
        verify_list(public_key, _b64(signature, "signature", path), payload.encode())
    except RegistryError:
        raise RevocationListInvalid(path, "its signature does not verify") from None
    try:
        listing = _Listing.model_validate(json.loads(payload))
    except (ValueError, ValidationError):
        raise RevocationListInvalid(path, "its payload is not a revocation list") from None
    for entry in listing.entries:
        if entry.level != "revoked":
            continue
        if not (entry.statement and entry.signature and entry.public_key):
            raise RevocationListInvalid(path, f"the revocation of {entry.name} {entry.version} "
                                              "carries no signed statement")
        expected = statement_bytes(entry.name, entry.version, entry.digest, entry.reason)
        if entry.statement.encode() != expected:
            raise RevocationListInvalid(path, f"the revocation statement of {entry.name} "
                                              f"{entry.version} does not match its entry")
        try:
            verify_statement(_b64(entry.public_key, "key", path),
                             _b64(entry.signature, "signature", path), expected)
        except RegistryError:
            raise RevocationListInvalid(path, f"the revocation of {entry.name} {entry.version} "
                                              "is not signed by the key it names") from None
    return Retirements(listing.serial, listing.issued_at, listing.entries,
                       key_id_for(public_key))


class RevocationCache:
    """The cached list of one home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / REVOCATIONS_NAME

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            raise RevocationListInvalid(str(self.path), "it is not JSON") from None
        if not isinstance(data, dict):
            raise RevocationListInvalid(str(self.path), "it is not a signed revocation list")
        return data

    def load(self) -> Retirements | None:
        """The cached list, verified again; None when there is none yet."""
        data = self._read()
        return None if data is None else verify(data, str(self.path))

    def store(self, signed: Any) -> Retirements:
        """Verify `signed` (a `SignedRevocationList` or its JSON object) against the pinned
        registry key and the cached serial, then replace the cache with it."""
        document = signed if isinstance(signed, dict) else signed.model_dump(mode="json")
        cached = self._read()
        pinned = None
        previous = None
        if cached is not None:
            previous = verify(cached, str(self.path))
            pinned = _b64(str(cached["public_key"]), "key", str(self.path))
        fresh = verify(document, "from the registry", pinned)
        if previous is not None and fresh.serial < previous.serial:
            raise RevocationListInvalid(
                "from the registry", f"its serial {fresh.serial} is older than the "
                                     f"{previous.serial} already seen (a replayed list)")
        keep = {k: document[k] for k in ("payload", "signature", "key_id", "public_key")}
        _write_atomic(self.path, json.dumps(keep, indent=1, sort_keys=True) + "\n")
        return fresh

    def refresh(self, client: MarketplaceClient) -> Retirements:
        """Fetch the registry's list and cache it (see `store`)."""
        return self.store(client.revocations())

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def revoked_error(entry: Retired) -> ReleaseRevoked:
    from registry.errors import ReleaseRevoked

    return ReleaseRevoked(entry.name, entry.version, entry.reason)


def warning(entry: Retired) -> str:
    """The one-line warning of a deprecated or yanked installed release."""
    line = f"{entry.name} {entry.version} is {entry.level}: {entry.reason}"
    if entry.successor:
        return f"{line}; its publisher suggests `agentfactory install {entry.successor}`"
    if entry.latest and entry.latest != entry.version:
        return f"{line}; run `agentfactory install {entry.name}` to move to {entry.latest}"
    return line
