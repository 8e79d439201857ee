"""The template manager: where templates come from, how they are cached and reloaded.

Sources, lowest precedence first: the built-in `templates/` directory, documents and paths returned
by plugins' `agentfactory_templates` hook, then the operator's `template_dirs` in order.

Invariants:
- readers see one immutable `Catalog` snapshot at a time; writers (reloads) are serialized by
  `_write_lock`, build a new catalog and swap the reference under `_lock`, and clear the cache in
  the same critical section, so no thread is ever served a template resolved from a mix of old and
  new files;
- a resolved template enters the cache only if the catalog it was resolved from is still current;
- a file that fails to load keeps its last good version in the catalog and its error is recorded
  (`errors()`, metrics, reload events) until a good version arrives or the file is deleted;
- every template served has passed inheritance resolution and every `agentfactory_validate_template`
  validator (a veto raises `TemplateVetoed`), and is a `ResolvedTemplate`;
- with a `TemplateDiskCache` (one-shot commands) and no hot reload, nothing is read or validated
  at construction: a template found in the disk cache under the current sources' fingerprint is
  served from it (it passed the validators when it was stored); the first miss, or anything that
  needs the catalog (`catalog()`, `names()`, `errors()`, a reload), builds the catalog as usual.
  A template resolved from a catalog built by a full reload is stored under the fingerprint taken
  before that reload read its sources (see `core.template_cache`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from core import catalog as cat
from core.cache import LruTtlCache
from core.config import FactorySettings
from core.errors import TemplateError, TemplateNotFound, TemplateVetoed, close_matches
from core.loader import template_files
from core.paths import builtin_templates_dir
from core.resolved import ResolvedTemplate
from core.timing import DurationHistogram, DurationSnapshot

if TYPE_CHECKING:
    from core.template_cache import Fingerprint, TemplateDiskCache
    from core.watcher import TemplateWatcher

ReloadAction = Literal["full", "added", "updated", "removed", "rejected"]


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """What one reload did. `error` is set, and the old version kept, when the file was rejected."""

    generation: int
    action: ReloadAction
    source: str
    names: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ManagerMetrics:
    """A consistent snapshot of the manager's counters."""

    templates_loaded: int
    cache_size: int
    cache_hits: int
    cache_misses: int
    hit_rate: float
    cache_evictions: int
    cache_expirations: int
    load_latency_us: float  # mean time to read + validate one file or document
    resolve_latency_us: float  # mean time to resolve one template's extends chain
    validation_latency_us: float  # mean time spent in validator plugins per resolution
    reloads: int
    errors: int  # load, resolution and veto errors since start
    current_errors: tuple[str, ...]  # sources whose latest version failed to load
    # Distributions: reading + validating one file or plugin document (valid or not), and one
    # cache miss's resolution (extends chain + validators).
    load_seconds: DurationSnapshot
    resolve_seconds: DurationSnapshot
    disk_hits: int = 0  # templates served from the disk cache


class TemplateManager:
    """Loads, validates, resolves, caches and hot-reloads templates. Thread-safe."""

    def __init__(
        self,
        settings: FactorySettings | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        *,
        builtin_dir: Path | None = None,
        include_builtin: bool = True,
        clock: Callable[[], float] = time.monotonic,
        reload_settle_s: float = 0.02,
        disk_cache: TemplateDiskCache | None = None,
    ) -> None:
        self.settings = settings or FactorySettings()
        self._pm = plugin_manager
        self._clock = clock
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: list[Callable[[ReloadEvent], None]] = []
        self._cache: LruTtlCache[ResolvedTemplate] = LruTtlCache(
            self.settings.cache_size, self.settings.cache_ttl_s
        )
        self._hits = self._misses = self._reloads = self._errors = self._disk_hits = 0
        self._timer = cat.LoadTimer()
        self._resolve_n = 0
        self._resolve_s = self._validate_s = 0.0
        self._load_times, self._resolve_times = DurationHistogram(), DurationHistogram()
        builtin = (builtin_dir or builtin_templates_dir()) if include_builtin else None
        self._dirs: list[cat.SourceDir] = []
        if builtin is not None:
            self._dirs.append(cat.SourceDir(builtin.resolve(), cat.LAYER_BUILTIN, "builtin"))
        for i, directory in enumerate(self.settings.template_dirs):
            self._dirs.append(
                cat.SourceDir(directory.resolve(), cat.LAYER_OPERATOR + i, "operator")
            )
        self._plugin_dirs: list[cat.SourceDir] = []
        self._catalog = cat.Catalog()
        self._loaded = False  # becomes true with the first reload and stays so
        self._disk = disk_cache if not self.settings.hot_reload else None
        self._disk_key: Fingerprint | None = None  # the current catalog's, if storable
        if self._disk is None:
            self.reload()
        for name in self.settings.preload:
            self.get(name)
        self._watcher: TemplateWatcher | None = None
        if self.settings.hot_reload:
            # watchdog is imported only when a watcher is wanted: the CLI never needs it.
            from core.watcher import TemplateWatcher

            self._watcher = TemplateWatcher(
                [d.path for d in self._all_dirs()], self.reload_path, settle_s=reload_settle_s
            )
            self._watcher.start()

    # ----------------------------------------------------------------- reading

    def get(self, name: str) -> ResolvedTemplate:
        """The resolved, validated template `name` (from the cache when fresh)."""
        now = self._clock()
        with self._lock:
            template, expired = self._cache.lookup(name, now)
            if template is not None:
                self._hits += 1
                return template
            self._misses += 1
            snapshot = self._catalog
            loaded = self._loaded
        if not loaded:
            template = self._from_disk(name, now)
            if template is not None:
                return template
            snapshot = self.catalog()
        elif expired is not None and self._watcher is None:
            snapshot = self._refresh_stale(expired, snapshot)
        return self._resolve_into_cache(name, snapshot, now)

    def cached(self, name: str) -> ResolvedTemplate | None:
        """The template `get(name)` would answer from the cache, or None; it loads and
        resolves nothing (an event loop may call it)."""
        with self._lock:
            return self._cache.peek(name, self._clock())

    def names(self) -> list[str]:
        """Names of every known template, sorted."""
        return sorted(self.catalog().by_name)

    def catalog(self) -> cat.Catalog:
        """The current immutable snapshot."""
        if not self._loaded:
            with self._write_lock:
                if not self._loaded:
                    self.reload()
        with self._lock:
            return self._catalog

    def errors(self) -> dict[str, TemplateError]:
        """Sources whose latest version failed to load, with the error."""
        return dict(self.catalog().errors)

    def metrics(self) -> ManagerMetrics:
        with self._lock:
            lookups = self._hits + self._misses
            return ManagerMetrics(
                templates_loaded=len(self._catalog.by_name),
                cache_size=len(self._cache),
                cache_hits=self._hits,
                cache_misses=self._misses,
                hit_rate=self._hits / lookups if lookups else 0.0,
                cache_evictions=self._cache.evictions,
                cache_expirations=self._cache.expirations,
                load_latency_us=_mean_us(self._timer.total_s, self._timer.count),
                resolve_latency_us=_mean_us(self._resolve_s, self._resolve_n),
                validation_latency_us=_mean_us(self._validate_s, self._resolve_n),
                reloads=self._reloads,
                errors=self._errors,
                current_errors=tuple(sorted(self._catalog.errors)),
                load_seconds=self._load_times.snapshot(),
                resolve_seconds=self._resolve_times.snapshot(),
                disk_hits=self._disk_hits,
            )

    def cached_names(self) -> list[str]:
        """Cached template names, least recently used first."""
        with self._lock:
            return self._cache.keys()

    # ----------------------------------------------------------------- reloading

    def reload(self) -> ReloadEvent:
        """Rebuild the catalog from every source (directories and plugins)."""
        with self._write_lock:
            sources: dict[str, tuple[cat.TemplateRecord, ...]] = {}
            errors: dict[str, TemplateError] = {}
            contributions = self._plugin_contributions()
            key = self._fingerprint(contributions)  # before any source is read
            self._plugin_dirs = [
                cat.SourceDir(item.resolve(), cat.LAYER_PLUGIN, f"plugin:{plugin}")
                for plugin, items in contributions
                for item in items
                if isinstance(item, Path) and item.is_dir()
            ]
            for source_dir in self._all_dirs():
                for path in template_files(source_dir.path):
                    self._load_into(path, source_dir, sources, errors)
            self._load_plugin_documents(contributions, sources, errors)
            names = tuple(sorted({r.template.name for rs in sources.values() for r in rs}))
            return self._publish(sources, errors, "full", "all sources", names, None, key)

    def reload_path(self, path: Path) -> ReloadEvent | None:
        """Reload one file after it was added, edited or deleted (the watcher calls this)."""
        self.catalog()  # a catalog not built yet is built now, plugin directories included
        path = path.resolve()
        source_dir = next((d for d in self._all_dirs() if d.path == path.parent), None)
        if source_dir is None:
            return None
        key = str(path)
        with self._write_lock:
            old = self.catalog()
            sources = dict(old.sources)
            errors = dict(old.errors)
            previous = sources.get(key, ())
            if not path.is_file():
                sources.pop(key, None)
                errors.pop(key, None)
                names = tuple(r.template.name for r in previous)
                return self._publish(sources, errors, "removed", key, names, None)
            if self._load_into(path, source_dir, sources, errors):
                names = tuple(r.template.name for r in sources[key])
                action: ReloadAction = "updated" if previous else "added"
                return self._publish(sources, errors, action, key, names, None)
            names = tuple(r.template.name for r in previous)
            return self._publish(sources, errors, "rejected", key, names, str(errors[key]))

    def invalidate(self) -> None:
        """Drop every cached resolution (e.g. after validators changed)."""
        with self._lock:
            self._cache.clear()

    def on_reload(self, callback: Callable[[ReloadEvent], None]) -> Callable[[], None]:
        """Call `callback(event)` after every reload; returns a function that unsubscribes."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until `predicate()` is true, re-checking after each reload; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                seen = self._catalog.generation
                self._lock.release()  # the predicate usually calls get(), which takes the lock
                try:
                    satisfied = predicate()
                finally:
                    self._lock.acquire()
                if satisfied:
                    return True
                if self._catalog.generation != seen:
                    continue  # a reload landed while the predicate ran: its notify is gone
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def close(self) -> None:
        """Stop watching files. The manager still serves what it has."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    # ----------------------------------------------------------------- internals

    def _all_dirs(self) -> list[cat.SourceDir]:
        return self._dirs + [d for d in self._plugin_dirs if d not in self._dirs]

    def _plugin_contributions(self) -> list[tuple[str, list[Path | Mapping[str, Any]]]]:
        """Each plugin's contributed templates; called once per full reload, not per event."""
        if self._pm is None:
            return []
        out = []
        for impl in self._pm.hook.agentfactory_templates.get_hookimpls():
            items: list[Path | Mapping[str, Any]] = []
            returned: Any = impl.function()
            for item in returned or ():
                items.append(Path(item) if isinstance(item, str) else item)
            out.append((impl.plugin_name, items))
        return out

    def _load_plugin_documents(
        self,
        contributions: list[tuple[str, list[Path | Mapping[str, Any]]]],
        sources: dict[str, tuple[cat.TemplateRecord, ...]],
        errors: dict[str, TemplateError],
    ) -> None:
        for plugin, items in contributions:
            documents: list[cat.TemplateRecord] = []
            key = f"plugin:{plugin}"
            for item in items:
                if isinstance(item, Path):
                    if item.is_file():
                        file_dir = cat.SourceDir(item.parent, cat.LAYER_PLUGIN, key)
                        self._load_into(item.resolve(), file_dir, sources, errors)
                    continue  # directories were loaded with the other directories
                start = time.perf_counter()
                try:
                    documents.append(cat.load_document(item, plugin, cat.LAYER_PLUGIN, self._timer))
                except TemplateError as exc:
                    errors[f"{key}#{len(documents)}"] = exc
                finally:
                    self._observe_load(start)
            if documents:
                sources[key] = tuple(documents)

    def _load_into(
        self,
        path: Path,
        source_dir: cat.SourceDir,
        sources: dict[str, tuple[cat.TemplateRecord, ...]],
        errors: dict[str, TemplateError],
    ) -> bool:
        key = str(path)
        start = time.perf_counter()
        try:
            record = cat.load_file(path, source_dir.layer, source_dir.origin, self._timer)
        except TemplateError as exc:
            errors[key] = exc
            return False
        finally:
            self._observe_load(start)
        sources[key] = (record,)
        errors.pop(key, None)
        return True

    def _publish(
        self,
        sources: dict[str, tuple[cat.TemplateRecord, ...]],
        errors: dict[str, TemplateError],
        action: ReloadAction,
        source: str,
        names: tuple[str, ...],
        error: str | None,
        disk_key: Fingerprint | None = None,
    ) -> ReloadEvent:
        with self._lock:
            generation = self._catalog.generation + 1
            self._catalog = cat.build(generation, sources, errors)
            self._loaded = True
            self._disk_key = disk_key  # a one-file reload leaves no fingerprint: store nothing
            self._cache.clear()
            self._reloads += 1
            if error is not None or (action == "full" and errors):
                self._errors += 1 if error is not None else len(errors)
            self._changed.notify_all()
        event = ReloadEvent(generation, action, source, names, error)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a faulty listener must not undo or block a reload
                import logging  # only ever needed here: not worth ~4 ms of every CLI start

                logging.getLogger(__name__).exception("reload listener %r failed", listener)
        return event

    def _refresh_stale(self, expired: ResolvedTemplate, snapshot: cat.Catalog) -> cat.Catalog:
        """Without a watcher, an expired entry re-checks its files' mtimes before re-resolving."""
        for name in expired.lineage:
            record = snapshot.by_name.get(name)
            if record is None or record.path is None:
                continue
            try:
                current = record.path.stat().st_mtime_ns
            except OSError:
                current = -1
            if current != record.mtime_ns:
                self.reload_path(record.path)
        return self.catalog()

    def _fingerprint(
        self, contributions: list[tuple[str, list[Path | Mapping[str, Any]]]]
    ) -> Fingerprint | None:
        if self._disk is None:
            return None
        from core.template_cache import fingerprint

        return fingerprint(
            [d.path for d in self._dirs], contributions, self._pm, self.settings
        )

    def _from_disk(self, name: str, now: float) -> ResolvedTemplate | None:
        """`name` from the disk cache, if the sources are as they were when it was stored."""
        key = self._fingerprint(self._plugin_contributions())
        template = None if key is None or self._disk is None else self._disk.load(key, name)
        if template is not None:
            with self._lock:
                self._disk_hits += 1
                if not self._loaded:
                    self._cache.put(name, template, now)
        return template

    def _resolve_into_cache(
        self, name: str, snapshot: cat.Catalog, now: float
    ) -> ResolvedTemplate:
        from core.inheritance import resolve

        start = time.perf_counter()
        try:
            resolved = resolve(name, snapshot.lookup).as_resolved()
        except TemplateNotFound as exc:
            self._count_error()
            error = snapshot.error_for(name) if not exc.chain else None
            close = close_matches(exc.name, snapshot.by_name)
            raise (error or TemplateNotFound(exc.name, exc.chain, close)) from None
        except TemplateError:
            self._count_error()
            raise
        resolved_at = time.perf_counter()
        reasons: list[str] = []
        if self._pm is not None:
            for answer in self._pm.hook.agentfactory_validate_template(
                template=resolved, settings=self.settings
            ):
                reasons.extend(answer)
        validated_at = time.perf_counter()
        with self._lock:
            self._resolve_n += 1
            self._resolve_s += resolved_at - start
            self._validate_s += validated_at - resolved_at
            self._resolve_times.observe(validated_at - start)
            disk_key = None
            if reasons:
                self._errors += 1
            elif self._catalog is snapshot:
                self._cache.put(name, resolved, now)
                disk_key = self._disk_key
        if reasons:
            raise TemplateVetoed(name, reasons)
        if disk_key is not None and self._disk is not None:
            self._disk.store(disk_key, resolved)
        return resolved

    def _count_error(self) -> None:
        with self._lock:
            self._errors += 1

    def _observe_load(self, start: float) -> None:
        elapsed = time.perf_counter() - start
        with self._lock:
            self._load_times.observe(elapsed)


def _mean_us(total_s: float, count: int) -> float:
    return total_s / count * 1e6 if count else 0.0

