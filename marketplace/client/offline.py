"""Making a bundle from a registry, and installing one with no network.

`create_bundle` resolves the requested agents (an installed agent named without a specifier
keeps its locked version) and their dependencies, downloads each release and verifies it as an
install would (publisher signature v2 over digest, name, version and file record, with the key
pinned here or pinned on first use), and packs the archives with their keys, release-log proofs,
the registry's signed revocation list and a review snapshot (`marketplace.client.bundle`).

`install_bundle` installs from a read bundle through the same `Installer` an online install
uses, talking to a `BundleClient`: a `MarketplaceClient` that answers from the bundle and whose
transport fails every request, so nothing reaches the network. Before anything is installed,
in order (any refusal leaves the home unchanged):

1. the bundle was read by `read_bundle` (members, digests, bundle signature); with a pinned
   bundler key (`signer`), the bundle must be signed by it;
2. the revocation list in the bundle verifies with the registry key this home pinned (or is
   pinned now); a release revoked by it, or by the list cached here, is refused by name;
3. every release passes the installer's checks (key pins, signature v2, file record, archive)
   and, when the bundle carries the registry's log or this home knows that registry's log, its
   inclusion proof under a tree head signed by the pinned log key (`OfflineLogWitness`);
4. then the requested agents are installed (`Installer.install`, `name==version`): consent for
   upgrades that ask for more, vetting in the sandbox, staging, lineage pins, commit.

Offline, a consistency proof from the head remembered here to the bundle's head cannot be
fetched: the witness keeps the remembered head (a head of the same size must have the same root)
and records each release's leaf, so the next online install still checks consistency and would
catch a bundled release the log does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from core.errors import AgentFactoryError
from marketplace.client.bundle import Bundle, BundledRelease, BundleRefused, write_bundle
from marketplace.client.errors import ApiError, MarketplaceError
from marketplace.client.http import DEFAULT_MAX_DOWNLOAD, MarketplaceClient, Progress
from marketplace.client.installer import Installer, InstallResult, Vetter
from marketplace.client.lockfile import LockEntry, read_lock, read_pins
from marketplace.client.logtrust import (
    InclusionInfo,
    LogInconsistent,
    LogKeyInfo,
    LogWitness,
    RegistryLog,
)
from marketplace.client.records import Download, KeyInfo, PackageDetail, Release
from marketplace.client.resolver import Resolver, parse_requirement
from registry.names import normalize_name
from registry.translog import SignedTreeHead

MAX_REVIEWS = 100


class BundleSignerMismatch(MarketplaceError):
    def __init__(self, source: str, expected: str, found: str) -> None:
        self.source, self.expected, self.found = source, expected, found
        super().__init__(f"bundle {source} is signed by key {found}, not by the pinned bundler "
                         f"key {expected}; nothing was installed")


# -- creating --------------------------------------------------------------------------------------

def _roots(home: Path, requests: Sequence[str]) -> list[str]:
    """Requests, an installed agent named bare pinned to its locked version."""
    agents = read_lock(home).agents
    out = []
    for request in requests:
        requirement = parse_requirement(request)
        locked = agents.get(requirement.key)
        bare = not str(requirement.specifier)
        out.append(f"{requirement.name}=={locked.version}" if bare and locked else request)
    return out


def create_bundle(client: MarketplaceClient, home: Path, requests: Sequence[str],
                  signer: Any) -> bytes:
    """A signed bundle of `requests` and their dependencies (see the module's doc)."""
    chosen: dict[str, tuple[Release, bool]] = {}
    for request in _roots(home, requests):
        for plan in Resolver(client.versions).resolve(parse_requirement(request)):
            before = chosen.get(plan.key)
            if before is not None and before[0].version != plan.release.version:
                raise MarketplaceError(f"{plan.name} is needed at {before[0].version} and at "
                                       f"{plan.release.version}: bundle them separately")
            chosen[plan.key] = (plan.release, plan.requested or bool(before and before[1]))
    installer = Installer(client, home, vetter=_no_vetting)
    pins = read_pins(home)
    lock = read_lock(home).agents
    releases: list[BundledRelease] = []
    members: dict[str, bytes] = {}
    keys: dict[str, list[dict[str, Any]]] = {}
    log_key = _log_key(client)
    for key, (release, requested) in sorted(chosen.items()):
        found = installer.fetch_verified(key, release, pins)
        manifest = found.package.manifest
        locked = lock.get(key)
        bundled = BundledRelease(
            name=manifest.name, version=release.version, digest=release.digest,
            size=len(found.data), key_id=release.key_id, publisher=found.pin.publisher,
            signature=base64.b64encode(found.signature).decode(),
            requires=dict(manifest.requires), requested=requested,
            lineage=locked.lineage if locked and locked.version == release.version else [],
        )
        releases.append(bundled)
        members[bundled.archive] = found.data
        if found.pin.publisher not in keys:
            keys[found.pin.publisher] = [
                k.model_dump(mode="json") for k in client.publisher_keys(found.pin.publisher)]
        if log_key is not None:
            proof = client.log_inclusion(manifest.name, release.version)
            members[bundled.inclusion] = _json(proof.model_dump(mode="json"))
        members[f"reviews/{normalize_name(manifest.name)}.json"] = _reviews(client, manifest.name)
    for publisher, listing in keys.items():
        members[f"keys/{publisher}.json"] = _json(listing)
    if log_key is not None:
        members["log/key.json"] = _json(log_key.model_dump(mode="json"))
    try:
        members["revocations.json"] = _json(client.revocations())
    except ApiError as exc:
        if exc.status != 404:
            raise
    return write_bundle(client.base_url, releases, members, signer)


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _log_key(client: MarketplaceClient) -> LogKeyInfo | None:
    try:
        return client.log_key()
    except ApiError as exc:
        if exc.status != 404:
            raise
        return None


def _reviews(client: MarketplaceClient, name: str) -> bytes:
    page = client.reviews(name, per_page=MAX_REVIEWS)
    rating = client.rating(name)
    return _json({"rating": rating.model_dump(mode="json"), "total": page.total,
                  "reviews": [r.model_dump(mode="json") for r in page.items]})


def _no_vetting(package: Any) -> Any:
    raise AssertionError("creating a bundle never vets")  # pragma: no cover


# -- answering from a bundle ----------------------------------------------------------------------

class _NoNetwork(httpx.BaseTransport):
    """Every request fails: a bundle install must never reach a network."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"offline: {request.method} {request.url} was not sent")


def _as_release(r: BundledRelease) -> Release:
    return Release(name=r.name, version=r.version, digest=r.digest, size=r.size,
                   signature=r.signature, key_id=r.key_id, requires=r.requires)


def _missing(what: str) -> ApiError:
    return ApiError(404, "NotInBundle", f"{what} is not in the bundle")


class BundleClient(MarketplaceClient):
    """The registry as the bundle recorded it; any other question fails as offline."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle.index.registry, transport=_NoNetwork())
        self.bundle = bundle

    def _release(self, name: str, version: str) -> BundledRelease:
        found = self.bundle.release(name, version)
        if found is None:
            raise _missing(f"{name} {version}")
        return found

    def package(self, name: str) -> PackageDetail:
        release = next((r for r in self.bundle.index.releases
                        if normalize_name(r.name) == normalize_name(name)), None)
        if release is None:
            raise _missing(name)
        return PackageDetail(name=release.name, publisher=release.publisher)

    def versions(self, name: str) -> list[Release]:
        key = normalize_name(name)
        return [_as_release(r) for r in self.bundle.index.releases
                if normalize_name(r.name) == key]

    def download(self, name: str, version: str, *, max_bytes: int = DEFAULT_MAX_DOWNLOAD,
                 install: bool = False, progress: Progress | None = None) -> Download:
        release = self._release(name, version)
        data = self.bundle.members[release.archive]
        if len(data) > max_bytes:
            raise BundleRefused(self.bundle.source, repr(release.archive),
                                f"is over the {max_bytes}-byte download limit")
        return Download(name=name, version=version, data=data,
                        sha256=hashlib.sha256(data).hexdigest(), signature=release.signature,
                        key_id=release.key_id)

    def publisher_keys(self, publisher: str) -> list[KeyInfo]:
        path = f"keys/{publisher}.json"
        listing = self.bundle.json_member(path) or []
        try:
            return [KeyInfo.model_validate(item) for item in listing]
        except (ValueError, TypeError):
            raise BundleRefused(self.bundle.source, repr(path), "is not a key list") from None

    def log_key(self) -> LogKeyInfo:
        data = self.bundle.json_member("log/key.json")
        if data is None:
            raise _missing("the release log's key")
        return LogKeyInfo.model_validate(data)

    def log_inclusion(self, name: str, version: str) -> InclusionInfo:
        release = self._release(name, version)
        data = self.bundle.json_member(release.inclusion)
        if data is None:
            raise _missing(f"the log inclusion proof of {name} {version}")
        return InclusionInfo.model_validate(data)

    def revocations(self) -> dict[str, Any]:
        data = self.bundle.json_member("revocations.json")
        if not isinstance(data, dict):
            raise _missing("a revocation list")
        return data


class OfflineLogWitness(LogWitness):
    """`LogWitness` without consistency proofs (none can be fetched offline): a head of the
    remembered size must have the remembered root; another size leaves the remembered head
    where it is, for the next online install to carry forward."""

    def advance(self, log: RegistryLog, new: SignedTreeHead) -> None:
        if log.head is None:
            super().advance(log, new)
            return
        old = log.head.signed().head
        if new.head.size == old.size and new.head.root != old.root:
            raise LogInconsistent(self.url, old, new.head, "two roots for the same size")


# -- installing ------------------------------------------------------------------------------------

def _check_revocations(client: BundleClient, home: Path) -> None:
    """Step 2: store the bundle's list (verified, pinned) when newer than the cached one, then
    refuse a bundled release that either list revokes."""
    from marketplace.client.errors import RevocationListInvalid
    from marketplace.client.retirement import RevocationCache, revoked_error, verify

    cache = RevocationCache(home)
    lists = []
    cached = cache.load()
    if cached is not None:
        lists.append(cached)
    document = client.bundle.json_member("revocations.json")
    if isinstance(document, dict):
        try:
            fresh = verify(document, "revocations.json", _cached_key(cache))
        except RevocationListInvalid as exc:
            raise BundleRefused(client.bundle.source, "'revocations.json'", exc.reason) from None
        lists.append(fresh)
        if cached is None or fresh.serial > cached.serial:
            cache.store(document)
    for release in client.bundle.index.releases:
        for retirements in lists:
            retired = retirements.status(release.name, release.version, release.digest)
            if retired is not None and retired.level == "revoked":
                raise revoked_error(retired)


def _cached_key(cache: Any) -> bytes | None:
    """The registry key of the list cached in this home (None: no list yet)."""
    try:
        document = json.loads(cache.path.read_text(encoding="utf-8"))
        return base64.b64decode(str(document["public_key"]), validate=True)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):  # `RevocationCache.load` already refused it
        return None


def _preflight(client: BundleClient, home: Path) -> None:
    """Step 3: every release verified (nothing written), log proofs included."""
    installer = Installer(client, home, vetter=_no_vetting)
    pins = read_pins(home)
    witness = OfflineLogWitness(client, home)
    for release in client.bundle.index.releases:
        try:
            found = installer.fetch_verified(release.name, _as_release(release), pins)
        except BundleRefused:
            raise
        except AgentFactoryError as exc:
            raise BundleRefused(client.bundle.source, repr(release.archive), str(exc)) from None
        try:
            witness.check_release(release.name, release.version, release.digest,
                                  release.key_id, found.signature)
        except AgentFactoryError as exc:
            raise BundleRefused(client.bundle.source, repr(release.inclusion), str(exc)
                                ) from None


def install_bundle(bundle: Bundle, home: Path, *, vetter: Vetter,
                   consent: Any | None = None, signer: str | None = None,
                   package_check: Any | None = None) -> InstallResult:
    """Install the requested agents of `bundle` into `home` with no network (see the doc)."""
    if signer is not None and bundle.signer.key_id != signer:
        raise BundleSignerMismatch(bundle.source, signer, bundle.signer.key_id)
    client = BundleClient(bundle)
    with client:
        _check_revocations(client, home)
        _preflight(client, home)
        installer = Installer(client, home, vetter=vetter, consent=consent,
                              witness=OfflineLogWitness, package_check=package_check)
        installed: list[LockEntry] = []
        unchanged: list[LockEntry] = []
        for release in bundle.index.releases:
            if release.requested:
                result = installer.install(f"{release.name}=={release.version}")
                installed += result.installed
                unchanged += result.unchanged
    return InstallResult(installed, unchanged)


__all__ = ["BundleClient", "OfflineLogWitness", "create_bundle", "install_bundle"]
