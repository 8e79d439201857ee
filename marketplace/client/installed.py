"""Installed community agents, exposed to the factory as one ordinary plugin.

Registered through the `agentfactory` entry-point group (`installed_agents`), exactly like the
built-in plugins. Its hooks read `agentfactory.lock` of `agentfactory_home()` and offer each
installed package's templates (their `implementation` defaulting to the package name) and its
`process()`, run by `sandbox.plugin.SandboxedAgentPlugin` under the operator's sandbox policy.

Invariants:
- the lockfile is the only source of truth: an agent is offered iff it has a lock entry, and
  its files are re-read only when the lockfile's (mtime, size, inode) changes, so a hook call
  on a warm process costs one `stat`;
- no installed code is parsed or run before its folder passed `integrity.verify_installed`: the
  release signature (checked with the key recorded at install) covers a record of every file's
  sha256, and a changed, added or missing file, an edited RECORD or SIGNATURE, or a signing key
  its owner has revoked since (`keys.json`), keeps the package out of the factory. Skipped
  packages cannot take the factory down; `errors()` says why, `load_error(name)` gives the error
  (naming the file) for `agentfactory run` to print. The agent runs from the bytes verified;
- a package whose files are missing or unreadable is skipped the same way;
- so is a package whose template extends a template of another package or a built-in whose
  content hash is no longer the one its lock entry pinned (`marketplace.client.lineage`:
  `LineageChanged` names both hashes, under the package's and its templates' names);
- a release the registry revoked (the verified revocation list cached in the home,
  `marketplace.client.retirement`) is never loaded: `load_error` is `ReleaseRevoked` for its
  package and template names, so a run of it is refused with the reason; a deprecated or yanked
  one loads, and `notice(name)` says why it should be replaced. A revocation list that does not
  verify keeps every package out (fail closed). The files watched are the lockfile and the list;
- a running factory learns about installs through `refresh_factory(factory)` (cheap, call it
  per request) or `watch_installed(factory)` (a watchdog observer on the home directory); both
  replace this plugin, through the factory's public API, by a view bound to the factory's
  sandbox policy and trusted publishers, which recomputes implementations and reloads plugin
  templates. The module's own hooks (the entry point) use `FactorySettings.from_env()`.
- importing this module imports nothing heavy (every process that builds a plugin manager
  imports it, `agentfactory --help` included): the lockfile models (pydantic), the registry and
  the sandbox are imported by the hooks that need them;
- a package counts as from a verified publisher (for the "high-risk" policy) only when the
  operator trusts its namespace; its signature, checked at install, proves who published it,
  not that they deserve trust.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.hookspecs import hookimpl
from core.paths import agentfactory_home

if TYPE_CHECKING:
    from core.agent import Agent
    from core.config import FactorySettings
    from core.factory import AgentFactory
    from marketplace.client.lockfile import LockEntry
    from registry.archive import Package

PLUGIN_NAME = "installed_agents"
REVOCATIONS_NAME = "revocations.json"  # `retirement.REVOCATIONS_NAME`, without its imports
Stamp = tuple[tuple[int, int, int] | None, tuple[int, int, int] | None] | None


def _lock_path(home: Path) -> Path:
    # `lockfile.lock_path(home)`, without importing that module's pydantic models to stat a
    # file that is usually absent: that import alone would double `agentfactory run`'s start-up.
    return home / "agentfactory.lock"


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _stamp(lock: Path) -> Stamp:
    """The lockfile's stamp and the revocation list's beside it: a change of either reloads."""
    stamp = _file_stamp(lock)
    revocations = _file_stamp(lock.with_name(REVOCATIONS_NAME))
    return None if stamp is None and revocations is None else (stamp, revocations)


def load_installed_package(
    home: Path, entry: LockEntry, revoked: Mapping[str, str] | None = None
) -> Package:
    """The `Package` of an installed agent, rebuilt from its unpacked files once they match the
    signed record (`InstalledFilesChanged` names the first that does not). `revoked`: key ids
    known to be revoked (default: those in `keys.json`)."""
    from marketplace.client.installer import install_dir
    from marketplace.client.integrity import verify_installed
    from registry.archive import Package, validate_contents
    from registry.errors import RevokedKey
    from registry.manifest import parse_manifest

    if revoked is None:
        from marketplace.client.lockfile import read_pins

        revoked = read_pins(home).revoked
    if entry.key_id in revoked:
        raise RevokedKey(entry.key_id)
    root = install_dir(home, entry.name)
    files = verify_installed(root, entry)
    manifest = parse_manifest(files.get("agent.json", b""), str(root / "agent.json"))
    templates = validate_contents(manifest, files)
    return Package(manifest, files, entry.digest, entry.size, templates)


class InstalledAgents:
    """The installed agents of one home, reloaded when its lockfile changes. Thread-safe."""

    def __init__(
        self, home: Path, policy: str = "always", trusted: frozenset[str] = frozenset()
    ) -> None:
        self.home = home
        self.policy = policy
        self.trusted = trusted
        self._lock = threading.Lock()
        self._stamp: Stamp = None
        self._loaded = False
        self._templates: list[Mapping[str, Any]] = []
        self._runners: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._failures: dict[str, Exception] = {}
        self._notices: dict[str, str] = {}

    def refresh(self) -> bool:
        """Re-read the lockfile and packages if the lockfile changed; True when it did."""
        stamp = _stamp(_lock_path(self.home))
        with self._lock:
            if self._loaded and stamp == self._stamp:
                return False
            if stamp is not None or self._loaded:  # no lockfile yet: nothing is installed
                self._load()
            self._stamp, self._loaded = stamp, True
            return True

    def _load(self) -> None:
        templates: list[Mapping[str, Any]] = []
        runners: dict[str, Any] = {}
        failures: dict[str, Exception] = {}
        notices: dict[str, str] = {}
        loaded: dict[str, tuple[LockEntry, Package, list[dict[str, Any]]]] = {}
        from core.errors import AgentFactoryError
        from marketplace.client.lockfile import read_lock, read_pins
        from marketplace.client.retirement import RevocationCache, revoked_error, warning

        revoked = read_pins(self.home).revoked
        try:
            retirements = RevocationCache(self.home).load()
            unbelievable: AgentFactoryError | None = None
        except AgentFactoryError as exc:
            retirements, unbelievable = None, exc
        for key, entry in read_lock(self.home).agents.items():
            retired = retirements.of(entry) if retirements is not None else None
            try:
                if unbelievable is not None:
                    raise unbelievable
                if retired is not None and retired.level == "revoked":
                    refused = revoked_error(retired)
                    failures.update(self._refused_templates(entry, revoked, refused))
                    raise refused
                if retired is not None:
                    notices[key] = warning(retired)
                package = load_installed_package(self.home, entry, revoked)
                docs = [self._template_doc(package, path) for path in package.manifest.templates]
                if package.manifest.entry_path in package.files:  # workflows need no runner
                    runners[key] = self._runner(package, entry)
            except (OSError, ValueError, AgentFactoryError) as exc:
                failures[key] = exc
                continue
            loaded[key] = (entry, package, docs)
        for key in self._lineage_refused(loaded, failures):
            del loaded[key]
            runners.pop(key, None)
        templates.extend(doc for _entry, _package, docs in loaded.values() for doc in docs)
        errors = {key: f"{type(exc).__name__}: {exc}" for key, exc in failures.items()}
        self._templates, self._runners = templates, runners
        self._errors, self._failures, self._notices = errors, failures, notices

    @staticmethod
    def _lineage_refused(
        loaded: Mapping[str, tuple[LockEntry, Package, list[dict[str, Any]]]],
        failures: dict[str, Exception],
    ) -> list[str]:
        """The loaded packages whose pinned cross-package parents changed or went away
        (`marketplace.client.lineage`); their error is recorded under their package and
        template names."""
        if not any(entry.lineage for entry, _package, _docs in loaded.values()):
            return []
        from marketplace.client.lineage import LineageError, TemplateIndex, check_lineage

        index = TemplateIndex.build(package for _entry, package, _docs in loaded.values())
        refused = []
        for key, (entry, _package, docs) in loaded.items():
            try:
                check_lineage(entry, index)
            except LineageError as exc:
                failures[key] = exc
                failures.update({f"template:{doc.get('name')}": exc for doc in docs})
                refused.append(key)
        return refused

    def _refused_templates(
        self, entry: LockEntry, revoked: Mapping[str, str], error: Exception
    ) -> dict[str, Exception]:
        """`error` under the names of a revoked package's templates (read, never run), so a
        run asking for one by its template name is told why it is refused."""
        try:
            package = load_installed_package(self.home, entry, revoked)
        except Exception:  # unreadable: the package name alone will have to do
            return {}
        names = (json.loads(package.files[path]).get("name") for path in package.manifest.templates)
        return {f"template:{name}": error for name in names if isinstance(name, str)}

    @staticmethod
    def _template_doc(package: Package, path: str) -> dict[str, Any]:
        from registry.names import normalize_name

        doc: dict[str, Any] = json.loads(package.files[path])
        if "workflow" not in doc:  # a workflow is run by the factory's `workflow` plugin
            doc.setdefault("implementation", normalize_name(package.manifest.name))
        return doc

    def _runner(self, package: Package, entry: LockEntry) -> Any:
        from sandbox import Sandbox
        from sandbox.plugin import SandboxedAgentPlugin
        from sandbox.vetting import VettingReport

        data = entry.vetting.report
        report = VettingReport.from_json(data) if data else None
        verified = package.manifest.namespace.lower() in self.trusted
        return SandboxedAgentPlugin(package, Sandbox(), self.policy, report,
                                    publisher_verified=verified)

    # -- what the hooks answer -----------------------------------------------------------------
    def templates(self) -> list[Mapping[str, Any]]:
        self.refresh()
        return list(self._templates)

    def implementations(self) -> list[str]:
        self.refresh()
        return sorted(self._runners)

    def process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        runner = self._runners.get(agent.implementation)
        if runner is None:
            return None
        result: dict[str, Any] | None = runner.agentfactory_process(agent=agent, task=task)
        return result

    def errors(self) -> dict[str, str]:
        self.refresh()
        return dict(self._errors)

    def load_error(self, name: str) -> Exception | None:
        """Why the installed package `name` (any spelling) is not offered, or None."""
        from core.errors import AgentFactoryError
        from registry.names import normalize_name

        self.refresh()
        try:
            key = normalize_name(name)
        except AgentFactoryError:  # not a package name: maybe a revoked package's template
            return self._failures.get(f"template:{name}")
        return self._failures.get(key) or self._failures.get(f"template:{name}")

    def notice(self, name: str) -> str | None:
        """Why installed package `name` (an implementation name) should be replaced: it is
        deprecated or yanked (`retirement.warning`); None otherwise."""
        self.refresh()
        return self._notices.get(name)

    # The same answers as hook implementations, so a view bound to one factory's policy can be
    # registered as a plugin object (see `refresh_factory`).
    @hookimpl(specname="agentfactory_templates")
    def _hook_templates(self) -> list[Mapping[str, Any]]:
        return self.templates()

    @hookimpl(specname="agentfactory_implementations")
    def _hook_implementations(self) -> list[str]:
        return self.implementations()

    @hookimpl(specname="agentfactory_process")
    def _hook_process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        return self.process(agent, task)


_homes: dict[tuple[Path, str, frozenset[str]], InstalledAgents] = {}
_homes_lock = threading.Lock()


def installed_agents(
    home: Path | None = None, settings: FactorySettings | None = None
) -> InstalledAgents:
    """The shared view of `home` (default: `agentfactory_home()`) under the sandbox policy and
    trusted publishers of `settings` (default: `FactorySettings.from_env()`)."""
    from core.config import FactorySettings

    home = (home or agentfactory_home()).resolve()
    settings = settings or FactorySettings.from_env()
    key = (home, settings.sandbox_policy, settings.trusted_publishers)
    with _homes_lock:
        view = _homes.get(key)
        if view is None:
            view = _homes[key] = InstalledAgents(home, *key[1:])
    return view


# -- the hooks (module-level, so the entry point is the module itself) -------------------------
@hookimpl
def agentfactory_templates() -> list[Mapping[str, Any]]:
    return installed_agents().templates()


@hookimpl
def agentfactory_implementations() -> list[str]:
    return installed_agents().implementations()


@hookimpl
def agentfactory_process(agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
    return installed_agents().process(agent, task)


# -- keeping a running factory current ---------------------------------------------------------
_synced: weakref.WeakKeyDictionary[AgentFactory, Stamp] = weakref.WeakKeyDictionary()


def refresh_factory(factory: AgentFactory) -> bool:
    """Make `factory` see installs and uninstalls done since its last refresh; True if any.

    One `stat` when nothing changed. Otherwise this plugin is re-registered through the
    factory's public API, so implementations are recomputed and plugin templates reloaded.
    """
    home = agentfactory_home()
    stamp = _stamp(_lock_path(home))
    if factory in _synced and _synced[factory] == stamp:
        return False
    view = installed_agents(home, factory.settings)
    view.refresh()
    if factory.plugin_manager.get_plugin(PLUGIN_NAME) is not None:
        factory.unregister_plugin(PLUGIN_NAME)
    factory.register_plugin(view, PLUGIN_NAME)
    _synced[factory] = stamp
    return True


def refusal(factory: AgentFactory, name: str) -> Exception | None:
    """Why `factory` does not offer installed agent `name` (a package or template name): e.g.
    `ReleaseRevoked`; None when nothing installed explains it."""
    return installed_agents(settings=factory.settings).load_error(name)


def watch_installed(factory: AgentFactory) -> Callable[[], None]:
    """Refresh `factory` whenever the lockfile or the revocation list is replaced; returns a
    function that stops it."""
    from watchdog.events import (
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        FileSystemEvent,
        FileSystemEventHandler,
    )
    from watchdog.observers import Observer

    from marketplace.client.lockfile import LOCK_NAME

    home = agentfactory_home()
    home.mkdir(parents=True, exist_ok=True)

    class _OnLock(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
            if any(Path(p).name in (LOCK_NAME, REVOCATIONS_NAME) for p in paths if p):
                refresh_factory(factory)

    observer = Observer()
    # Both files are replaced by a rename (or written and closed, or removed). Writes in place
    # are left out: the embedded database's files sit in the same directory, and every commit
    # would otherwise wake the observer's threads (about a tenth of the server's CPU under load).
    wanted = [FileMovedEvent, FileCreatedEvent, FileClosedEvent, FileDeletedEvent]
    observer.schedule(_OnLock(), str(home), recursive=False, event_filter=wanted)
    observer.daemon = True
    observer.start()
    refresh_factory(factory)

    def stop() -> None:
        observer.stop()
        observer.join(timeout=5)

    return stop
