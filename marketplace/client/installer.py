"""Install, reinstall from the lockfile, and uninstall community agents.

The order of checks for every package, nothing trusted before its check passed:
1. resolve the request and the agents' own requirements (`marketplace.client.resolver`);
2. download with a size cap, hashing while streaming; the sha256 must equal the digest the
   registry indexed (or the lockfile recorded, for `--locked`);
3. the signing key: pinned per publisher on first use (`keys.json`); a different key later is
   refused (`KeyChanged`) unless every link of its rotation chain back to the pinned key verifies;
   the key must belong to the package's publisher and hash to its key id;
4. the Ed25519 signature over (digest, name, version) with that key;
5. the archive's own checks (`registry.archive.read_archive`) and that it is the asked-for
   name and version;
6. the plugins' vetoes (`agentfactory_validate_package` of the plugins installed here, unless
   another package check is given): any refusal is `core.errors.PackageVetoed`, naming the plugin;
   then vetting: the package's examples run in the sandbox; a failure refuses the install;
7. unpack into a staging directory on the same filesystem, then rename into
   `agents/<namespace>/<name>/`; only when every package of the plan is staged are the renames,
   the lockfile and the pins committed. A refusal at any step leaves the home unchanged.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from marketplace.client.errors import (
    DigestMismatch,
    NotInstalled,
    StillRequired,
    UntrustedPackage,
    VettingFailed,
)
from marketplace.client.http import DEFAULT_MAX_DOWNLOAD, MarketplaceClient, Progress
from marketplace.client.keytrust import b64decode, trusted_key
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
from marketplace.client.records import Download, publisher_of
from marketplace.client.resolver import Plan, Resolver, parse_requirement
from registry.archive import Package, extract_package, read_archive
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


def agents_dir(home: Path) -> Path:
    return home / "agents"


def install_dir(home: Path, name: str) -> Path:
    namespace, short = normalize_name(name).split("/")
    return agents_dir(home) / namespace / short


@dataclass(frozen=True)
class InstallResult:
    installed: list[LockEntry]
    unchanged: list[LockEntry]


@dataclass
class _Staged:
    entry: LockEntry
    staging: Path


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
    ) -> None:
        self.client = client
        self.home = home
        self.vetter = vetter
        # None: the installed plugins' vetoes, looked up on first use (not for a no-op install).
        self.package_check = package_check
        self.max_download = max_download
        self.progress = progress or (lambda label: None)

    # -- public operations ---------------------------------------------------------------------
    def install(self, request: str) -> InstallResult:
        root = parse_requirement(request)
        with self._locked():
            lock, pins = read_lock(self.home), read_pins(self.home)
            installed = {k: (e.version, e.requires) for k, e in lock.agents.items()}
            plans = Resolver(self.client.versions, installed).resolve(root)
            unchanged: list[LockEntry] = []
            with _staging() as staged:
                for plan in plans:
                    current = lock.agents.get(plan.key)
                    if (
                        current
                        and current.digest == plan.release.digest
                        and (install_dir(self.home, plan.key).is_dir())
                    ):
                        if plan.requested and not current.requested:
                            current = current.model_copy(update={"requested": True})
                            lock.agents[plan.key] = current
                        unchanged.append(current)
                        continue
                    staged.append(self._fetch(plan, pins))
                self._commit(lock, pins, staged)
            if not staged and unchanged:
                write_lock(self.home, lock)  # only the "requested" flag may have changed
        return InstallResult([s.entry for s in staged], unchanged)

    def install_locked(self, names: Sequence[str] = ()) -> InstallResult:
        """Reinstall exactly the bytes the lockfile records (all entries, or those named)."""
        with self._locked():
            lock, pins = read_lock(self.home), read_pins(self.home)
            keys = [normalize_name(n) for n in names] or list(lock.agents)
            unchanged: list[LockEntry] = []
            with _staging() as staged:
                for key in keys:
                    entry = lock.agents.get(key)
                    if entry is None:
                        raise NotInstalled(key)
                    target = install_dir(self.home, key)
                    if target.is_dir() and (target / "agent.json").is_file():
                        unchanged.append(entry)
                        continue
                    staged.append(self._fetch_locked(entry, pins))
                self._commit(lock, pins, staged)
        return InstallResult([s.entry for s in staged], unchanged)

    def uninstall(self, name: str) -> list[LockEntry]:
        return uninstall(self.home, name)

    def installed(self) -> list[LockEntry]:
        return installed(self.home)

    # -- steps ---------------------------------------------------------------------------------
    def _download(self, name: str, version: str, digest: str) -> Download:
        """The release's bytes (size-capped, hashed while streaming), refused unless their sha256
        is `digest`."""
        label = f"{name} {version}"
        download = self.client.download(
            name, version, max_bytes=self.max_download, install=True,
            progress=self.progress(label),
        )
        if download.sha256 != digest.lower():
            raise DigestMismatch(label, digest, download.sha256)
        return download

    def _fetch(self, plan: Plan, pins: PinStore) -> _Staged:
        release = plan.release
        download = self._download(plan.name, release.version, release.digest)
        signature = release.signature or download.signature or ""
        publisher = publisher_of(self.client.package(plan.name).publisher)
        pin = trusted_key(self.client, publisher, release.key_id, pins)
        public = b64decode(pin.public_key, "the pinned key", publisher)
        package = self._verify(
            plan.name,
            release.version,
            download.data,
            download.sha256,
            public,
            release.key_id,
            signature,
        )
        entry = LockEntry(
            name=package.manifest.name,
            version=release.version,
            digest=download.sha256,
            size=len(download.data),
            key_id=release.key_id,
            public_key=pin.public_key,
            publisher=publisher,
            requires=dict(package.manifest.requires),
            requested=plan.requested,
            vetting=self._vet(package),
            installed_at=now(),
        )
        return _Staged(entry, self._stage(download.data))

    def _fetch_locked(self, entry: LockEntry, pins: PinStore) -> _Staged:
        download = self._download(entry.name, entry.version, entry.digest)
        public = b64decode(entry.public_key, "the locked public key", entry.name)
        if key_id_for(public) != entry.key_id:
            raise UntrustedPackage(entry.name, "the lockfile's public key does not match its id")
        signature = download.signature or next(
            (r.signature for r in self.client.versions(entry.name) if r.version == entry.version),
            "",
        )
        package = self._verify(
            entry.name,
            entry.version,
            download.data,
            download.sha256,
            public,
            entry.key_id,
            signature,
        )
        # The lockfile is the user's recorded trust decision; pin it if nothing is pinned yet.
        pins.publishers.setdefault(
            entry.publisher,
            KeyPin(key_id=entry.key_id, public_key=entry.public_key, pinned_at=now()),
        )
        fresh = entry.model_copy(update={"vetting": self._vet(package), "installed_at": now()})
        return _Staged(fresh, self._stage(download.data))

    def _verify(
        self,
        name: str,
        version: str,
        data: bytes,
        digest: str,
        public: bytes,
        key_id: str,
        signature_b64: str,
    ) -> Package:
        if not signature_b64:
            raise UntrustedPackage(name, f"the registry served no signature for {version}")
        signature = b64decode(signature_b64, "the signature", name)
        verify_release(public, signature, digest, name, version)
        package = read_archive(data)
        if normalize_name(package.manifest.name) != normalize_name(name) or (
            package.manifest.version != version
        ):
            raise UntrustedPackage(
                name,
                f"the archive is {package.manifest.name} "
                f"{package.manifest.version}, not {name} {version}",
            )
        return package

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

    def _check(self, manifest: Manifest) -> None:
        if self.package_check is None:
            from core.config import FactorySettings
            from core.plugins import make_plugin_manager, package_check

            self.package_check = package_check(make_plugin_manager(), FactorySettings.from_env())
        self.package_check(manifest)

    def _stage(self, data: bytes) -> Path:
        root = agents_dir(self.home)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
        extract_package(data, staging / "pkg")
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
