"""What this machine believes about each registry's release log, and the checks that keep it.

A registry appends every release it accepts to a public Merkle-tree log and signs its tree
heads with its own key (`registry.translog`, `docs/trust.md`). The installer holds it to that:

- the log key is pinned per registry URL on first use (`$AGENTFACTORY_HOME/log.json`), or
  given by the operator (`AGENTFACTORY_LOG_KEY`, the raw public key in base64); a head signed by
  another key is `LogKeyChanged`;
- every release installed must be in the log: its leaf is recomputed here from what the
  installer verified itself (name, version, sha256, signing key, signed file record) and its
  inclusion proof must lead to the root of a head signed by the pinned key (`NotInLog`,
  `LogProofFailed`);
- the last head seen is remembered; the next head must extend it, shown by a consistency proof
  (or be the same head), else `LogInconsistent` names both heads. So does a release whose leaf
  differs from the one seen for the same name and version before;
- nothing is written until the install commits (`save`), atomically; a refusal leaves the
  state as it was. A registry that has never served a log to this machine is trusted as before
  (first use), but once a head is remembered, a registry that stops serving its log is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from marketplace.client.config import write_private
from marketplace.client.errors import ApiError, MarketplaceError
from marketplace.client.lockfile import now
from registry.signing import key_id_for
from registry.translog import (
    InvalidProof,
    LogEntry,
    SignedTreeHead,
    TreeHead,
    verify_consistency,
    verify_inclusion,
)

if TYPE_CHECKING:
    from marketplace.client.http import MarketplaceClient

STATE_NAME = "log.json"
ENV_LOG_KEY = "AGENTFACTORY_LOG_KEY"


# -- errors ------------------------------------------------------------------------------------

class LogError(MarketplaceError):
    """The registry's release log does not vouch for what it serves."""


class LogStateCorrupt(LogError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a release-log state file; restore it from a backup "
                         "(removing it forgets every pinned log key and head)")


class LogKeyChanged(LogError):
    def __init__(self, url: str, pinned: str, served: str) -> None:
        self.url, self.pinned, self.served = url, pinned, served
        super().__init__(
            f"the release log of {url} is signed by key {served}, not by the pinned log key "
            f"{pinned}; if the operator really replaced it, remove {url} from {STATE_NAME}"
        )


class LogInconsistent(LogError):
    """Two heads of one registry that cannot both be true: history was rewritten."""

    def __init__(self, url: str, old: TreeHead, new: TreeHead, reason: str) -> None:
        self.url, self.old, self.new, self.reason = url, old, new, reason
        super().__init__(
            f"the registry at {url} rewrote its release log: the head it signed before "
            f"({old.describe()}) and the head it serves now ({new.describe()}) disagree: "
            f"{reason}; nothing was installed"
        )


class NotInLog(LogError):
    def __init__(self, url: str, release: str) -> None:
        self.url, self.release = url, release
        super().__init__(f"{release} is not in the release log of {url}: a registry must log "
                         "every release it serves; nothing was installed")


class LogProofFailed(LogError):
    def __init__(self, url: str, release: str, reason: str) -> None:
        self.url, self.release, self.reason = url, release, reason
        super().__init__(f"the release log of {url} does not vouch for {release}: {reason}")


# -- wire records (what /api/v1/log/* answer) --------------------------------------------------

def _unhex(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidProof(what, "a hash is not hexadecimal") from None


class TreeHeadInfo(BaseModel):
    tree_size: int
    root_hash: str
    timestamp_ms: int
    key_id: str
    signature: str

    def signed(self) -> SignedTreeHead:
        try:
            signature = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidProof("a tree head", "its signature is not base64") from None
        head = TreeHead(self.tree_size, _unhex(self.root_hash, "a tree head"), self.timestamp_ms)
        return SignedTreeHead(head, self.key_id, signature)

    @classmethod
    def of(cls, signed: SignedTreeHead) -> TreeHeadInfo:
        head = signed.head
        return cls(tree_size=head.size, root_hash=head.root.hex(), timestamp_ms=head.timestamp_ms,
                   key_id=signed.key_id, signature=base64.b64encode(signed.signature).decode())


class LogKeyInfo(BaseModel):
    key_id: str
    public_key: str
    algorithm: str = "ed25519"


class LogEntryInfo(BaseModel):
    index: int
    name: str
    version: str
    digest: str
    key_id: str
    record: str | None = None
    leaf_hash: str

    def entry(self) -> LogEntry:
        return LogEntry(self.name, self.version, self.digest, self.key_id, self.record)


class InclusionInfo(BaseModel):
    entry: LogEntryInfo
    proof: list[str]
    head: TreeHeadInfo

    def hashes(self) -> list[bytes]:
        return [_unhex(p, "an inclusion proof") for p in self.proof]


class ConsistencyInfo(BaseModel):
    from_size: int
    to_size: int
    proof: list[str]
    head: TreeHeadInfo

    def hashes(self) -> list[bytes]:
        return [_unhex(p, "a consistency proof") for p in self.proof]


class EntriesInfo(BaseModel):
    start: int
    entries: list[LogEntryInfo]
    head: TreeHeadInfo


# -- the state file ----------------------------------------------------------------------------

class RegistryLog(BaseModel):
    """What this machine pinned and saw of one registry's log."""

    key_id: str
    public_key: str
    pinned_at: str
    head: TreeHeadInfo | None = None
    # name@version -> leaf hash (hex) of every release installed from this registry.
    seen: dict[str, str] = Field(default_factory=dict)


class LogState(BaseModel):
    registries: dict[str, RegistryLog] = Field(default_factory=dict)


def read_log_state(home: Path) -> LogState:
    path = home / STATE_NAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LogState()
    try:
        return LogState.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise LogStateCorrupt(str(path)) from None


def write_log_state(home: Path, state: LogState) -> None:
    home.mkdir(parents=True, exist_ok=True)
    write_private(home / STATE_NAME, state.model_dump_json(indent=2) + "\n")


def operator_log_key() -> bytes | None:
    """The log key the operator configured (`AGENTFACTORY_LOG_KEY`), if any."""
    value = os.environ.get(ENV_LOG_KEY, "").strip()
    if not value:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise LogError(f"{ENV_LOG_KEY} must be a raw 32-byte Ed25519 public key in base64")
    return key


# -- the witness -------------------------------------------------------------------------------

class LogWitness:
    """One operation's view of one registry's log: check releases, then `save` on commit."""

    def __init__(self, client: MarketplaceClient, home: Path) -> None:
        self.client = client
        self.home = home
        self.url = client.base_url
        self.state = read_log_state(home)
        self._log: RegistryLog | None = None
        self._checked = False

    def registry_log(self) -> RegistryLog | None:
        """The pinned log of this registry (pinned now if new); None when it serves no log and
        never did."""
        if self._checked:
            return self._log
        self._checked = True
        known = self.state.registries.get(self.url)
        configured = operator_log_key()
        if known is not None and configured is None:
            self._log = known
            return known
        try:
            served = self.client.log_key()
        except ApiError as exc:
            if exc.status != 404 or configured is not None:
                raise
            return None  # a registry without a log, never seen with one: first use
        try:
            public = base64.b64decode(served.public_key, validate=True)
        except (binascii.Error, ValueError):
            raise LogKeyChanged(self.url, known.key_id if known else "(none)",
                                served.key_id) from None
        pinned = configured or public
        if key_id_for(public) != served.key_id or public != pinned:
            pinned_id = known.key_id if known else key_id_for(pinned)
            raise LogKeyChanged(self.url, pinned_id, served.key_id)
        self._log = known or RegistryLog(
            key_id=served.key_id, public_key=served.public_key, pinned_at=now()
        )
        self.state.registries[self.url] = self._log
        return self._log

    def check_release(
        self, name: str, version: str, digest: str, key_id: str, signature: bytes
    ) -> None:
        """Refuse unless the log holds exactly this release, consistently with its past."""
        log = self.registry_log()
        if log is None:
            return
        record = signature[:32].hex() if len(signature) == 96 else None
        entry = LogEntry.of(name, version, digest, key_id, record)
        try:
            info = self.client.log_inclusion(name, version)
        except ApiError as exc:
            if exc.status == 404:
                raise NotInLog(self.url, entry.release) from None
            raise
        try:
            head = self._verified_head(log, info.head)
            self.advance(log, head)
            verify_inclusion(entry.leaf_hash(), info.entry.index, head.head.size, info.hashes(),
                             head.head.root)
        except InvalidProof as exc:
            raise LogProofFailed(self.url, entry.release, str(exc)) from None
        leaf = entry.leaf_hash().hex()
        before = log.seen.get(entry.release)
        if before is not None and before != leaf:
            old = log.head.signed().head if log.head else head.head
            raise LogInconsistent(self.url, old, head.head,
                                  f"{entry.release} is logged with another entry than before")
        log.seen[entry.release] = leaf

    def _verified_head(self, log: RegistryLog, info: TreeHeadInfo) -> SignedTreeHead:
        head = info.signed()
        if head.key_id != log.key_id:
            raise LogKeyChanged(self.url, log.key_id, head.key_id)
        head.verify(base64.b64decode(log.public_key))
        return head

    def advance(self, log: RegistryLog, new: SignedTreeHead) -> None:
        """Move the remembered head to `new` if the log shows it extends the old one."""
        if log.head is None:
            log.head = TreeHeadInfo.of(new)
            return
        old = log.head.signed().head
        fresh = new.head
        if fresh.size < old.size:
            raise LogInconsistent(self.url, old, fresh, "the log is shorter than before")
        if fresh.size == old.size:
            if fresh.root != old.root:
                raise LogInconsistent(self.url, old, fresh, "two roots for the same size")
        else:
            try:
                answer = self.client.log_consistency(old.size, fresh.size)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                raise LogInconsistent(self.url, old, fresh, exc.detail) from None
            proven = self._verified_head(log, answer.head).head
            if (proven.size, proven.root) != (fresh.size, fresh.root):
                raise LogInconsistent(self.url, fresh, proven, "two roots for the same size")
            try:
                verify_consistency(old.size, fresh.size, old.root, fresh.root, answer.hashes())
            except InvalidProof as exc:
                raise LogInconsistent(self.url, old, fresh, exc.reason) from None
        log.head = TreeHeadInfo.of(new)

    def save(self) -> None:
        if self._log is not None:
            write_log_state(self.home, self.state)
