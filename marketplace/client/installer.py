"""Install, reinstall from the lockfile, and uninstall community agents.

The order of checks for every package, nothing trusted before its check passed:
1. resolve the request and the agents' own requirements (`marketplace.client.resolver`); an
   installed agent is never moved to a lower version unless the request pins that version with
   `==` (`DowngradeRefused`, which says when the registry no longer offers the installed one);
2. download with a size cap, hashing while streaming; the sha256 must equal the digest the
   registry indexed (or the lockfile recorded, for `--locked`);
3. the publisher and signing key come from the pin of the package's namespace (`keys.json`,
   `marketplace.client.keytrust`), not from the registry's JSON: another publisher named there
   is `PublisherChanged`, another key `KeyChanged` unless its rotation chain leads back to the
   pin, a key its owner ever revoked `RevokedKey` (pinned or not);
4. the Ed25519 signature with that key, in the v2 format: over (digest, name, version, sha256
   of the package's file record); a v1 signature covers no record and is refused;
5. the archive's own checks (`registry.archive.read_archive`), that its file record is the one
   the signature covers, that no path lands in `.agentfactory/`, and that it is the asked-for
   name and version;
5b. the release log (`marketplace.client.logtrust`): the release's entry, recomputed from what
   steps 2-5 verified, must be in the registry's Merkle log under a tree head signed by the
   pinned log key, and that head must extend the last one this machine saw (`LogInconsistent`
   names both heads otherwise); the remembered head is written with the pins, at commit;
5c. an upgrade of an installed agent that asks for more than the installed version (new tools,
   permissions, capabilities, models, needs, a less confined sandbox tier, another key:
   `marketplace.client.asks`) goes on only if `consent` says yes (`UpgradeNeedsConsent`);
6. the plugins' vetoes (`agentfactory_validate_package` of the plugins installed here, unless
   another package check is given): any refusal is `core.errors.PackageVetoed`, naming the plugin;
   then vetting: the package's examples run in the sandbox; a failure refuses the install;
7. unpack into a staging directory on the same filesystem with the signed record beside the
   files (`marketplace.client.integrity`, checked again before every load), then rename into
   `agents/<namespace>/<name>/`; only when every package of the plan is staged are the renames,
   the lockfile and the pins committed. Before that, each template that extends a template
   from elsewhere gets its parent's content hash pinned (`marketplace.client.lineage`);
   `install --locked` checks those pins instead, and reinstalls the packages they name.
   A refusal at any step leaves the home unchanged.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import Version

from core.errors import AgentFactoryError
from marketplace.client.asks import Asks, Upgrade, UpgradeNeedsConsent, asks_of, diff
from marketplace.client.errors import (
    DigestMismatch,
    DowngradeRefused,
    InstalledFilesChanged,
    NotInstalled,
    StillRequired,
    UntrustedPackage,
    VettingFailed,
)
from marketplace.client.http import DEFAULT_MAX_DOWNLOAD, MarketplaceClient, Progress
from marketplace.client.integrity import is_reserved, verify_installed, write_install_record
from marketplace.client.keytrust import b64decode, check_not_revoked, namespace_of, trusted_key
from marketplace.client.lineage import (
    TemplateIndex,
    check_lineage,
    outside_parents,
    pinned_packages,
    pins_for,
)
from marketplace.client.lockfile import (
    KeyPin,
    LockEntry,
    Lockfile,
    PinStore,
    VettingSummary,
    now,
    read_lock,
    read_pins,
    write_lock,
    write_pins,
)
from marketplace.client.logtrust import LogWitness
from marketplace.client.records import Download, Release, publisher_of
from marketplace.client.resolver import Plan, Requirement, Resolver, parse_requirement
from registry.archive import Package, extract_package, read_archive, record_digest
from registry.errors import NoMatchingRelease
from registry.manifest import Manifest
from registry.names import normalize_name
from registry.signing import key_id_for, verify_release

if TYPE_CHECKING:
    from sandbox.vetting import VettingReport

Vetter = Callable[[Package], VettingSummary]
PackageCheck = Callable[[Manifest], None]
"""Raises an `AgentFactoryError` to refuse a package before it is vetted or unpacked."""
ProgressFor = Callable[[str], Progress | None]
"""Given a label ("acme/x 1.0"), a download progress callback (or None for no progress)."""
Consent = Callable[[Upgrade], bool]
"""Asked when an upgrade asks for more (`marketplace.client.asks`); True lets it go on."""
Witness = Callable[[MarketplaceClient, Path], LogWitness]


def agents_dir(home: Path) -> Path:
    return home / "agents"


def install_dir(home: Path, name: str) -> Path:
    namespace, short = normalize_name(name).split("/")
    return agents_dir(home) / namespace / short


@dataclass(frozen=True)
class InstallResult:
    installed: list[LockEntry]
    unchanged: list[LockEntry]
    notes: list[str] = field(default_factory=list)  # e.g. an agent whose pinned parent moved


@dataclass
class _Staged:
    entry: LockEntry
    staging: Path
    package: Package | None = None


@dataclass(frozen=True)
class _Verified:
    package: Package
    signature: bytes


@dataclass(frozen=True)
class VerifiedRelease:
    """A release downloaded and verified as an install would, but not installed."""

    package: Package
    data: bytes
    signature: bytes
    pin: KeyPin


class Installer:
    """Installs into `home`, talking to the registry through `client`."""

    def __init__(
        self,
        client: MarketplaceClient,
        home: Path,
        *,
        vetter: Vetter,
        max_download: int = DEFAULT_MAX_DOWNLOAD,
        progress: ProgressFor | None = None,
        package_check: PackageCheck | None = None,
        consent: Consent | None = None,
        witness: Witness = LogWitness,
    ) -> None:
        self.client = client
        self.consent = consent  # None: an upgrade asking for more is refused
        self._witness = witness
        self.home = home
        self.vetter = vetter
        # None: the installed plugins' vetoes, looked up on first use (not for a no-op install).
        self.package_check = package_check
        self.max_download = max_download
        self.progress = progress or (lambda label: None)
        self._log: LogWitness | None = None  # the release log as this operation saw it

    # -- public operations ---------------------------------------------------------------------
    def install(self, request: str) -> InstallResult:
        root = parse_requirement(request)
        with self._locked():
            lock, pins = _read_state(self.home)
            self._log = self._witness(self.client, self.home)
            installed = {k: (e.version, e.requires) for k, e in lock.agents.items()}
            plans = Resolver(self.client.versions, installed).resolve(root)
            for plan in plans:
                self._refuse_downgrade(root, plan, lock.agents.get(plan.key))
            unchanged: list[LockEntry] = []
            with _staging() as staged:
                for plan in plans:
                    current = lock.agents.get(plan.key)
                    # A folder that fails its record check is fetched again, not kept.
                    if (
                        current
                        and current.digest == plan.release.digest
                        and _intact(self.home, current)
                    ):
                        if plan.requested and not current.requested:
                            current = current.model_copy(update={"requested": True})
                            lock.agents[plan.key] = current
                        unchanged.append(current)
                        continue
                    staged.append(self._fetch(plan, pins, current))
                self._pin_lineage(lock, staged)
                kept = lock.agents.get(root.key)
                if kept is not None and kept in unchanged:
                    self._repin(lock, staged, kept)
                notes = self._moved_parents(lock, staged)
                self._commit(lock, pins, staged)
            if not staged and unchanged:
                write_lock(self.home, lock)  # the "requested" flag or lineage pins may change
        return InstallResult([s.entry for s in staged], unchanged, notes)

    def install_locked(self, names: Sequence[str] = ()) -> InstallResult:
        """Reinstall exactly the bytes the lockfile records (all entries, or those named)."""
        with self._locked():
            lock, pins = _read_state(self.home)
            self._log = self._witness(self.client, self.home)
            keys = pinned_packages([normalize_name(n) for n in names] or list(lock.agents),
                                   lock.agents)
            # The parent versions the lineage pins name win over what is installed now.
            parents = {normalize_name(p.package): (p.package, p.version) for k in keys
                       if k in lock.agents for p in lock.agents[k].lineage if p.package}
            unchanged: list[LockEntry] = []
            with _staging() as staged:
                for key in keys:
                    entry = lock.agents.get(key)
                    parent = parents.get(key)
                    if parent is not None and (entry is None or entry.version != parent[1]):
                        staged.append(self._fetch_pinned_parent(key, *parent, entry, pins))
                        continue
                    if entry is None:
                        raise NotInstalled(key)
                    if _intact(self.home, entry):
                        unchanged.append(entry)
                        continue
                    staged.append(self._fetch_locked(entry, pins))
                self._check_lineage(lock, staged, [lock.agents[k] for k in keys
                                                   if k in lock.agents])
                self._commit(lock, pins, staged)
        return InstallResult([s.entry for s in staged], unchanged)

    def preview(self, entry: LockEntry) -> Upgrade | None:
        """The newest release above installed `entry` that `install` would choose, verified,
        with what moving to it would add; None when `entry` is the newest. Writes nothing."""
        requirement = parse_requirement(entry.name)
        offered = sorted(self.client.versions(entry.name), key=lambda r: Version(r.version))
        best = next((r for r in reversed(offered) if requirement.allows(r)), None)
        if best is None or Version(best.version) <= Version(entry.version):
            return None
        found = self.fetch_verified(entry.name, best, _read_state(self.home)[1])
        new = asks_of(found.package, found.pin.key_id, rotated_from=found.pin.rotated_from)
        return Upgrade(entry.name, entry.version, best.version,
                       diff(self._installed_asks(entry, new), new))

    def fetch_verified(self, name: str, release: Release, pins: PinStore, *,
                       install: bool = False) -> VerifiedRelease:
        """Download `release` of `name` and run the checks of steps 2-5b on it (`pins` is
        updated in memory only, as an install would)."""
        download = self._download(name, release.version, release.digest, install=install)
        claimed = publisher_of(self.client.package(name).publisher)
        pin = trusted_key(self.client, name, claimed, release.key_id, pins)
        public = b64decode(pin.public_key, "the pinned key", name)
        verified = self._verify(name, release.version, download.data, download.sha256, public,
                                release.key_id, release.signature or download.signature or "")
        return VerifiedRelease(verified.package, download.data, verified.signature, pin)

    def uninstall(self, name: str) -> list[LockEntry]:
        return uninstall(self.home, name)

    def installed(self) -> list[LockEntry]:
        return installed(self.home)

    # -- steps ---------------------------------------------------------------------------------
    def _refuse_downgrade(self, root: Requirement, plan: Plan, current: LockEntry | None) -> None:
        """Refuse moving an installed agent to a lower version unless `==` asks for it."""
        if current is None or Version(plan.release.version) >= Version(current.version):
            return
        exact = plan.key == root.key and any(
            s.operator in ("==", "===") and "*" not in s.version for s in root.specifier
        )
        if exact:
            return
        newer_offered = any(
            not r.yanked and Version(r.version) >= Version(current.version)
            for r in self.client.versions(plan.name)
        )
        reason = f"'{root.name}{root.specifier}' selects" if newer_offered else (
            "the registry now offers at most"
        )
        raise DowngradeRefused(current.name, current.version, plan.release.version, reason)

    def _download(self, name: str, version: str, digest: str, *, install: bool = True
                  ) -> Download:
        """The release's bytes (size-capped, hashed while streaming), refused unless their sha256
        is `digest`."""
        label = f"{name} {version}"
        download = self.client.download(
            name, version, max_bytes=self.max_download, install=install,
            progress=self.progress(label),
        )
        if download.sha256 != digest.lower():
            raise DigestMismatch(label, digest, download.sha256)
        return download

    def _fetch(self, plan: Plan, pins: PinStore, current: LockEntry | None = None) -> _Staged:
        release = plan.release
        download = self._download(plan.name, release.version, release.digest)
        signature = release.signature or download.signature or ""
        claimed = publisher_of(self.client.package(plan.name).publisher)
        pin = trusted_key(self.client, plan.name, claimed, release.key_id, pins)
        public = b64decode(pin.public_key, "the pinned key", plan.name)
        verified = self._verify(
            plan.name,
            release.version,
            download.data,
            download.sha256,
            public,
            release.key_id,
            signature,
        )
        package = verified.package
        if current is not None:
            self._ask_consent(current, package, pin.key_id, pin.rotated_from)
        entry = LockEntry(
            name=package.manifest.name,
            version=release.version,
            digest=download.sha256,
            size=len(download.data),
            key_id=release.key_id,
            public_key=pin.public_key,
            publisher=pin.publisher,
            requires=dict(package.manifest.requires),
            requested=plan.requested,
            vetting=self._vet(package),
            installed_at=now(),
        )
        return _Staged(entry, self._stage(download.data, entry, verified.signature), package)

    def _fetch_pinned_parent(self, key: str, name: str, version: str,
                             current: LockEntry | None, pins: PinStore) -> _Staged:
        """`install --locked`: the parent package version a lineage pin names."""
        release = next((r for r in self.client.versions(name) if r.version == version), None)
        if release is None:
            raise NoMatchingRelease(name, f"=={version}")
        requested = current.requested if current is not None else False
        return self._fetch(Plan(key, name, release, requested), pins, current)

    def _fetch_locked(self, entry: LockEntry, pins: PinStore) -> _Staged:
        download = self._download(entry.name, entry.version, entry.digest)
        public = b64decode(entry.public_key, "the locked public key", entry.name)
        if key_id_for(public) != entry.key_id:
            raise UntrustedPackage(entry.name, "the lockfile's public key does not match its id")
        check_not_revoked(self.client, entry.publisher, entry.key_id, pins)
        signature = download.signature or next(
            (r.signature for r in self.client.versions(entry.name) if r.version == entry.version),
            "",
        )
        verified = self._verify(
            entry.name,
            entry.version,
            download.data,
            download.sha256,
            public,
            entry.key_id,
            signature,
        )
        # The lockfile is the user's recorded trust decision; pin it if nothing is pinned yet.
        pins.namespaces.setdefault(
            namespace_of(entry.name),
            KeyPin(key_id=entry.key_id, public_key=entry.public_key, pinned_at=now(),
                   publisher=entry.publisher),
        )
        vetting = self._vet(verified.package)
        fresh = entry.model_copy(update={"vetting": vetting, "installed_at": now()})
        return _Staged(fresh, self._stage(download.data, fresh, verified.signature),
                       verified.package)

    def _verify(
        self,
        name: str,
        version: str,
        data: bytes,
        digest: str,
        public: bytes,
        key_id: str,
        signature_b64: str,
    ) -> _Verified:
        if not signature_b64:
            raise UntrustedPackage(name, f"the registry served no signature for {version}")
        signature = b64decode(signature_b64, "the signature", name)
        signed_record = verify_release(public, signature, digest, name, version)
        if signed_record is None:
            raise UntrustedPackage(
                name, f"{version} carries a v1 signature, which does not cover its files; "
                "the publisher must publish again with a current agentfactory",
            )
        package = read_archive(data)
        if record_digest(package.files) != signed_record:
            raise UntrustedPackage(name, "its files are not the ones its signature covers")
        reserved = next((p for p in sorted(package.files) if is_reserved(p)), None)
        if reserved is not None:
            raise UntrustedPackage(name, f"{reserved!r} would overwrite the install record")
        if normalize_name(package.manifest.name) != normalize_name(name) or (
            package.manifest.version != version
        ):
            raise UntrustedPackage(
                name,
                f"the archive is {package.manifest.name} "
                f"{package.manifest.version}, not {name} {version}",
            )
        if self._log is not None:
            self._log.check_release(name, version, digest, key_id, signature)
        return _Verified(package, signature)

    def _vet(self, package: Package) -> VettingSummary:
        self._check(package.manifest)  # cheap, and refuses before any sandbox time is spent
        summary = self.vetter(package)
        # "unvetted" (no examples) installs: the sandbox policy treats it as high-risk.
        if not summary.passed and summary.status != "unvetted":
            raise VettingFailed(
                package.manifest.name,
                package.manifest.version,
                summary.failures or [summary.detail or "vetting failed"],
            )
        return summary

    def _installed_asks(self, current: LockEntry, new: Asks) -> Asks:
        """What installed `current` asks for. A folder that cannot be read any more (removed,
        changed) is being repaired: only its signing key, kept in the lockfile, is compared."""
        from marketplace.client.installed import load_installed_package

        try:
            return asks_of(load_installed_package(self.home, current), current.key_id)
        except (OSError, AgentFactoryError):
            return replace(new, key_id=current.key_id, rotated_from=())

    def _ask_consent(self, current: LockEntry, package: Package, key_id: str,
                     rotated_from: Sequence[str]) -> None:
        """Step 5c: refuse an upgrade that asks for more unless `consent` accepts it."""
        new = asks_of(package, key_id, rotated_from=rotated_from)
        change = diff(self._installed_asks(current, new), new)
        if not change.needs_consent:
            return
        upgrade = Upgrade(current.name, current.version, package.manifest.version, change)
        if self.consent is None or not self.consent(upgrade):
            raise UpgradeNeedsConsent(upgrade)

    def _index(self, lock: Lockfile, staged: list[_Staged]) -> TemplateIndex:
        """The templates parents may come from once `staged` replaces what it replaces."""
        from marketplace.client.installed import load_installed_package

        replaced = {normalize_name(item.entry.name) for item in staged}
        packages = [item.package for item in staged if item.package is not None]
        for key, entry in lock.agents.items():
            if key in replaced:
                continue
            try:
                packages.append(load_installed_package(self.home, entry))
            except (OSError, AgentFactoryError):  # the factory does not offer it either
                continue
        return TemplateIndex.build(packages)

    def _pin_lineage(self, lock: Lockfile, staged: list[_Staged]) -> None:
        """Pin the content hash of every outside parent of the staged packages' templates."""
        if not any(item.package is not None and outside_parents(item.package)
                   for item in staged):
            return
        index = self._index(lock, staged)
        for item in staged:
            if item.package is not None:
                pins = pins_for(item.package, index)
                item.entry = item.entry.model_copy(update={"lineage": pins})

    def _repin(self, lock: Lockfile, staged: list[_Staged], entry: LockEntry) -> None:
        """Installing an agent already installed re-pins its parents if they moved: shown and
        accepted like an upgrade that asks for more."""
        if not entry.lineage:
            return
        from marketplace.client.asks import AskDiff, Change
        from marketplace.client.installed import load_installed_package

        fresh = pins_for(load_installed_package(self.home, entry), self._index(lock, staged))
        old = {(p.template, p.parent): p.hash for p in entry.lineage}
        moved = tuple(Change("~", "parent", f"{p.parent} (of {p.template}): sha256:"
                             f"{old.get((p.template, p.parent), '')[:12]}… → sha256:"
                             f"{p.hash[:12]}…")
                      for p in fresh if old.get((p.template, p.parent)) != p.hash)
        if not moved:
            return
        upgrade = Upgrade(entry.name, entry.version, entry.version, AskDiff(moved))
        if self.consent is None or not self.consent(upgrade):
            raise UpgradeNeedsConsent(upgrade)
        lock.agents[normalize_name(entry.name)] = entry.model_copy(update={"lineage": fresh})

    def _moved_parents(self, lock: Lockfile, staged: list[_Staged]) -> list[str]:
        """A note per installed agent left behind whose pinned parent this install replaces."""
        replaced = {normalize_name(item.entry.name) for item in staged}
        behind = [e for k, e in lock.agents.items() if k not in replaced
                  and any(normalize_name(p.package) in replaced for p in e.lineage if p.package)]
        if not behind:
            return []
        index = self._index(lock, staged)
        notes = []
        for entry in behind:
            try:
                check_lineage(entry, index)
            except AgentFactoryError as exc:
                notes.append(f"{exc}; or re-pin it with `agentfactory update {entry.name}`")
        return notes

    def _check_lineage(self, lock: Lockfile, staged: list[_Staged],
                       entries: list[LockEntry]) -> None:
        """`install --locked`: every pinned parent must hash as the lockfile says."""
        if any(entry.lineage for entry in entries):
            index = self._index(lock, staged)
            for entry in entries:
                check_lineage(entry, index)

    def _check(self, manifest: Manifest) -> None:
        if self.package_check is None:
            from core.config import FactorySettings
            from core.plugins import make_plugin_manager, package_check

            self.package_check = package_check(make_plugin_manager(), FactorySettings.from_env())
        self.package_check(manifest)

    def _stage(self, data: bytes, entry: LockEntry, signature: bytes) -> Path:
        root = agents_dir(self.home)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
        package = extract_package(data, staging / "pkg")
        write_install_record(staging / "pkg", package.files, entry, signature)
        return staging

    def _commit(self, lock: Lockfile, pins: PinStore, staged: list[_Staged]) -> None:
        """Swap staged trees into place, then record them; old trees go only at the end."""
        trash: list[Path] = []
        for item in staged:
            target = install_dir(self.home, item.entry.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                old = item.staging / "old"
                target.rename(old)
                trash.append(old)
            (item.staging / "pkg").rename(target)
            lock.agents[normalize_name(item.entry.name)] = item.entry
        if staged:
            write_pins(self.home, pins)
            if self._log is not None:
                self._log.save()
            write_lock(self.home, lock)
        for old in trash:
            shutil.rmtree(old, ignore_errors=True)

    def _locked(self) -> AbstractContextManager[None]:
        return _home_lock(self.home)


def uninstall(home: Path, name: str) -> list[LockEntry]:
    """Remove `name` and the dependencies nothing else needs; return what was removed.

    The lock entry goes first (a running factory stops offering the agent), then the files.
    Key pins are kept on purpose: a later reinstall must meet the same publisher key.
    """
    key = normalize_name(name)
    with _home_lock(home):
        lock = read_lock(home)
        if key not in lock.agents:
            raise NotInstalled(name)
        users = [e.name for k, e in lock.agents.items()
                 if k != key and key in {normalize_name(d) for d in e.requires}]
        if users:
            raise StillRequired(name, sorted(users))
        removed = [lock.agents.pop(key)]
        removed += _orphans(lock)
        write_lock(home, lock)
        for entry in removed:
            _remove_tree(install_dir(home, entry.name))
    return removed


def installed(home: Path) -> list[LockEntry]:
    return sorted(read_lock(home).agents.values(), key=lambda e: e.name)


def _read_state(home: Path) -> tuple[Lockfile, PinStore]:
    """The lockfile and pins; per-publisher pins of older clients become pins of the namespaces
    their locked agents were installed from (other namespaces start afresh)."""
    lock, pins = read_lock(home), read_pins(home)
    for entry in lock.agents.values():
        legacy = pins.publishers.get(entry.publisher)
        if legacy is not None:
            pins.namespaces.setdefault(
                namespace_of(entry.name), legacy.model_copy(update={"publisher": entry.publisher})
            )
    return lock, pins


def _intact(home: Path, entry: LockEntry) -> bool:
    """True when the agent's folder still matches its signed record."""
    try:
        verify_installed(install_dir(home, entry.name), entry)
    except InstalledFilesChanged:
        return False
    return True


@contextmanager
def _staging() -> Iterator[list[_Staged]]:
    """The packages staged by one operation; their staging directories are removed afterwards,
    whether `_commit` moved their contents into place or something failed first."""
    staged: list[_Staged] = []
    try:
        yield staged
    finally:
        for item in staged:
            shutil.rmtree(item.staging, ignore_errors=True)


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """One installer at a time per home (an advisory lock, released by the OS on exit)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".install.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _orphans(lock: Lockfile) -> list[LockEntry]:
    """Pop dependencies that were not asked for and that nothing installed requires any more."""
    removed: list[LockEntry] = []
    while True:
        needed = {normalize_name(d) for e in lock.agents.values() for d in e.requires}
        orphan = next(
            (k for k, e in lock.agents.items() if not e.requested and k not in needed), None
        )
        if orphan is None:
            return removed
        removed.append(lock.agents.pop(orphan))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    parent = path.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()


def sandbox_vetter(progress: Callable[[str], None] | None = None) -> Vetter:
    """Vet with the real sandbox (`sandbox.vetting.vet`), summarized for the lockfile."""

    def vet(package: Package) -> VettingSummary:
        from sandbox.vetting import vet as sandbox_vet

        if progress is not None:
            from sandbox import Sandbox

            Sandbox(progress=progress).ensure_ready()
        return summarize(sandbox_vet(package))

    return vet


def summarize(report: VettingReport) -> VettingSummary:
    """The lockfile's summary of a sandbox vetting report (the full report is kept too)."""
    failures = [f"{e.name}: {'; '.join(e.failures)}" for e in report.examples if not e.passed]
    return VettingSummary(
        passed=report.passed, status=report.status.value, examples=len(report.examples),
        failures=failures, duration_ms=round(report.total_ms, 3), report=report.to_json(),
    )
