"""Signed offline bundles: the file format, reading it safely, and its signature.

A bundle is one deterministic zip (sorted members, fixed timestamps, no directories):

- `bundle.json`: the index (`BundleIndex`): the registry it came from, every release (name,
  version, digest, size, key id, publisher, the publisher's v2 signature, requires, whether it
  was asked for or came as a dependency, lineage pins) and the sha256 of every other member;
- `SIGNATURE`: the bundling user's Ed25519 key (id and public bytes) and its signature over
  `agentfactory-bundle-v1\\n` + sha256(`bundle.json`);
- `archives/<ns>/<name>/<version>.zip`: the archives, byte for byte as the registry served them;
- `keys/<publisher>.json`: the publishers' keys with their rotation statements and revocations;
- `log/key.json` and `log/inclusion/<ns>/<name>/<version>.json`: the registry's release-log key
  and, per release, its inclusion proof under a tree head the log key signed (no `log/` members
  when the registry keeps no log);
- `revocations.json`: the registry's signed revocation list, as served (absent if none);
- `reviews/<ns>/<name>.json`: a snapshot of the package's rating and reviews (informational).

Reading (`read_bundle`) refuses, naming the member, before anything is parsed as a bundle: a
file that is not a whole zip (truncated), too many members, a member over `max_member_bytes` or
the whole over `max_total_bytes` (sizes are enforced on the bytes actually inflated, so a lying
header cannot make a bomb), a path that is absolute, climbs out (`..`), uses backslashes, is a
directory or a link, a name given twice, a member the index does not list or whose sha256
differs from the index, an index member that is missing, and a signature that does not verify.

What the bundle signature adds: the publishers' signatures, pinned keys, log proofs and the
registry-signed revocation list are what make a release installable (`bundle_install`); the
bundle signature binds the whole set — which releases, which revocation list, the review
snapshot — to the person who assembled it, so a receiver who pins that key
(`--bundle-signer`) knows that nothing was swapped, added or left out on the way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import stat
import zipfile
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.client.errors import MarketplaceError
from marketplace.client.lockfile import LineagePin
from registry.names import normalize_name

FORMAT = 1
INDEX = "bundle.json"
SIGNATURE = "SIGNATURE"
DOMAIN = b"agentfactory-bundle-v1\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest time: the same bytes for the same contents


class BundleRefused(MarketplaceError):
    """A bundle that cannot be believed; `member` names the part at fault."""

    def __init__(self, source: str, member: str, reason: str) -> None:
        self.source, self.member, self.reason = source, member, reason
        super().__init__(f"bundle {source} refused: {member} {reason}; nothing was installed")


@dataclass(frozen=True)
class BundleLimits:
    max_members: int = 10_000
    max_member_bytes: int = 10 * 1024 * 1024  # the installer's download cap
    max_total_bytes: int = 512 * 1024 * 1024


class BundledRelease(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    digest: str
    size: int
    key_id: str
    publisher: str
    signature: str  # base64 v2 release signature
    requires: dict[str, str] = Field(default_factory=dict)
    requested: bool = True
    lineage: list[LineagePin] = Field(default_factory=list)

    @property
    def archive(self) -> str:
        return f"archives/{_path_of(self.name)}/{self.version}.zip"

    @property
    def inclusion(self) -> str:
        return f"log/inclusion/{_path_of(self.name)}/{self.version}.json"


class BundleIndex(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    registry: str
    releases: list[BundledRelease]
    members: dict[str, str]  # path -> sha256 of every member but the index and SIGNATURE


class BundleSigner(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    public_key: str
    signature: str


@dataclass(frozen=True)
class Bundle:
    """A bundle whose every check passed: index, signer and members by path."""

    source: str
    index: BundleIndex
    signer: BundleSigner
    members: dict[str, bytes] = field(repr=False)

    def json_member(self, path: str) -> Any | None:
        """Member `path` as JSON (None when absent)."""
        data = self.members.get(path)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BundleRefused(self.source, path, "is not JSON") from None

    def release(self, name: str, version: str) -> BundledRelease | None:
        key = normalize_name(name)
        return next((r for r in self.index.releases
                     if normalize_name(r.name) == key and r.version == version), None)


def _path_of(name: str) -> str:
    return normalize_name(name)


def _message(index_bytes: bytes) -> bytes:
    return DOMAIN + hashlib.sha256(index_bytes).hexdigest().encode()


def write_bundle(registry: str, releases: list[BundledRelease], members: dict[str, bytes],
                 signer: Any) -> bytes:
    """The bundle of `releases` and `members` (path -> bytes), signed by `signer` (a
    `registry.signing.SigningKey`). The same inputs give the same bytes."""
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in sorted(members.items())}
    index = BundleIndex(registry=registry, releases=releases, members=digests)
    index_bytes = (json.dumps(index.model_dump(mode="json"), indent=1, sort_keys=True) + "\n"
                   ).encode()
    signature = BundleSigner(
        key_id=signer.key_id, public_key=base64.b64encode(signer.public_bytes).decode(),
        signature=base64.b64encode(signer.sign(_message(index_bytes))).decode(),
    )
    everything = {**members, INDEX: index_bytes,
                  SIGNATURE: (signature.model_dump_json(indent=1) + "\n").encode()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(everything):
            info = zipfile.ZipInfo(path, _EPOCH)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, everything[path])
    return out.getvalue()


def _check_path(source: str, path: str) -> None:
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or ":" in parts[0]
            or any(p in ("", ".", "..") for p in parts)):
        raise BundleRefused(source, repr(path), "is not a plain relative path inside the bundle")


def _members(source: str, data: bytes, limits: BundleLimits) -> dict[str, bytes]:
    """Every member's bytes, within `limits`, each path checked (see the module's list)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise BundleRefused(source, "the file", "is not a whole zip archive (truncated or "
                            "damaged)") from None
    if len(infos) > limits.max_members:
        raise BundleRefused(source, "the file", f"holds {len(infos)} members, over the "
                            f"{limits.max_members} allowed")
    members: dict[str, bytes] = {}
    total = 0
    with archive:
        for info in infos:
            path = info.filename
            _check_path(source, path)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: a tool that records no type
            if info.is_dir() or kind not in (0, stat.S_IFREG):
                raise BundleRefused(source, repr(path), "is not a regular file")
            if path in members:
                raise BundleRefused(source, repr(path), "appears twice")
            if info.file_size > limits.max_member_bytes:
                raise BundleRefused(source, repr(path), f"is {info.file_size} bytes, over the "
                                    f"{limits.max_member_bytes}-byte limit")
            try:
                with archive.open(info) as handle:
                    body = handle.read(limits.max_member_bytes + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zipfile.LargeZipFile):
                raise BundleRefused(source, repr(path), "cannot be read (damaged or truncated)"
                                    ) from None
            if len(body) > limits.max_member_bytes:
                raise BundleRefused(source, repr(path), "inflates past the "
                                    f"{limits.max_member_bytes}-byte limit")
            total += len(body)
            if total > limits.max_total_bytes:
                raise BundleRefused(source, "the file", "inflates past the "
                                    f"{limits.max_total_bytes}-byte limit")
            members[path] = body
    return members


def _b64(source: str, member: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BundleRefused(source, member, "holds a value that is not base64") from None


def _signer(source: str, members: dict[str, bytes], index_bytes: bytes) -> BundleSigner:
    from cryptography.exceptions import InvalidSignature

    from registry.errors import InvalidKey
    from registry.signing import key_id_for, load_public

    try:
        signer = BundleSigner.model_validate_json(members[SIGNATURE])
    except (ValidationError, ValueError):
        raise BundleRefused(source, SIGNATURE, "is not a bundle signature") from None
    public = _b64(source, SIGNATURE, signer.public_key)
    if key_id_for(public) != signer.key_id:
        raise BundleRefused(source, SIGNATURE, "names a key that does not hash to its id")
    try:
        load_public(public).verify(_b64(source, SIGNATURE, signer.signature),
                                   _message(index_bytes))
    except (InvalidSignature, InvalidKey):
        raise BundleRefused(source, SIGNATURE, f"does not verify with key {signer.key_id} "
                            f"over {INDEX}") from None
    return signer


def read_bundle(data: bytes, source: str = "(bundle)", limits: BundleLimits | None = None
                ) -> Bundle:
    """A `Bundle` once every check of the module passes; `BundleRefused` names the first
    member at fault."""
    members = _members(source, data, limits or BundleLimits())
    for required in (INDEX, SIGNATURE):
        if required not in members:
            raise BundleRefused(source, required, "is missing")
    index_bytes = members.pop(INDEX)
    signer = _signer(source, members, index_bytes)
    members.pop(SIGNATURE)
    try:
        index = BundleIndex.model_validate_json(index_bytes)
    except (ValidationError, ValueError):
        raise BundleRefused(source, INDEX, "is not a bundle index") from None
    if index.format != FORMAT:
        raise BundleRefused(source, INDEX, f"has format {index.format}, not {FORMAT}")
    for path in sorted(members):
        expected = index.members.get(path)
        if expected is None:
            raise BundleRefused(source, repr(path), f"is not listed in {INDEX}")
        if hashlib.sha256(members[path]).hexdigest() != expected:
            raise BundleRefused(source, repr(path), f"does not match its sha256 in {INDEX}")
    for path in sorted(set(index.members) - set(members)):
        raise BundleRefused(source, repr(path), f"is listed in {INDEX} but missing")
    for release in index.releases:
        if release.archive not in members:
            raise BundleRefused(source, repr(release.archive),
                                f"is missing ({release.name} {release.version})")
    return Bundle(source, index, signer, members)
