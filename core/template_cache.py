"""The disk cache of resolved templates, for processes that serve one template and exit.

`agentfactory run` resolves one template per process. Without this cache every run imports
pydantic and validates every template file to serve it, which costs more than the rest of the
run; with it, a run whose sources have not changed reads one JSON file and builds a
`ResolvedTemplate` from it, without importing pydantic.

What an entry depends on, all of it in its `Fingerprint`:
- the configuration: the source directories, the registered plugins' names, the factory settings
  (validators receive them), the Python version and the cache format; it names the cache file
  (`templates-<sha256 of it>.json` under `$AGENTFACTORY_CACHE/templates`), so an edit overwrites
  the same file and a user who switches between configurations keeps one file for each;
- the state: the path and sha256 of every template file of every source directory, each plugin's
  contributed documents (their JSON) and paths (the files' sha256), and the path, size and mtime
  of the code that decides what is valid (core's template modules, the deny-list, and the module
  of every `agentfactory_validate_template` implementation).

Invariants:
- an entry is served only if the fingerprint computed now equals the stored one byte for byte
  (the whole of it, not a digest), and its document passes `ResolvedTemplate.from_document`,
  carries the name asked for and matches its own content hash; anything else (a missing,
  truncated, garbage or foreign file) is a miss, never an error;
- only templates that resolved and passed every validator are stored; a name that fails
  (unknown, invalid, vetoed) always takes the slow path, so its error is exactly the one a run
  without the cache gives;
- the manager computes the fingerprint before it reads the sources it resolves from, so a file
  edited meanwhile leaves a stored fingerprint that no later state matches;
- files are written and read through `core.cachefiles` (atomic replace, failures ignored); at
  most `MAX_FILES` files are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cachefiles import prune, read_json, write_json
from core.hashing import canonical_json, content_hash
from core.loader import template_files
from core.resolved import ResolvedTemplate

if TYPE_CHECKING:
    import pluggy

    from core.config import FactorySettings

FORMAT = 2  # 2: documents may hold `output_schema`
MAX_FILES = 32
PREFIX = "templates-"

Contribution = tuple[str, Sequence[Path | Mapping[str, Any]]]
"""A plugin's name and what its `agentfactory_templates` hook returned."""

_CORE = Path(__file__).resolve().parent
# Core code that decides what a template resolves to and whether it is valid or refused.
_CORE_CODE = (
    "template.py", "resolved.py", "inheritance.py", "loader.py", "hashing.py", "security.py",
    "template_cache.py", "workflow.py",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the cached templates of one state of the sources depend on (see the module doc)."""

    file_name: str  # from the configuration part only
    canonical: bytes  # canonical JSON of the whole fingerprint, compared byte for byte


def fingerprint(
    directories: Iterable[Path],
    contributions: Iterable[Contribution],
    plugin_manager: pluggy.PluginManager | None,
    settings: FactorySettings,
) -> Fingerprint | None:
    """The fingerprint of these sources now; None when it cannot be taken (a plugin returned a
    document that is not plain JSON), and then nothing is cached."""
    directories = list(directories)
    configuration = {
        "format": FORMAT,
        "python": sys.version,
        "directories": [str(d) for d in directories],
        "plugins": sorted(name for name, _ in plugin_manager.list_name_plugin())
        if plugin_manager is not None
        else [],
        "settings": {f.name: _plain(getattr(settings, f.name))
                     for f in dataclasses.fields(settings)},
    }
    state = {
        "files": [_file(path) for d in directories for path in template_files(d)],
        "contributions": [[plugin, [_contribution(item) for item in items]]
                          for plugin, items in contributions],
        "code": [_stamp(path) for path in _code_files(plugin_manager)],
    }
    try:
        identity = canonical_json(configuration)
        canonical = canonical_json({"configuration": configuration, "state": state})
    except (TypeError, ValueError):  # a plugin document holding a non-JSON value
        return None
    return Fingerprint(f"{PREFIX}{hashlib.sha256(identity).hexdigest()[:16]}.json", canonical)


class TemplateDiskCache:
    """Resolved templates in `directory`, one file per configuration. Safe to share between
    processes (last writer wins; a lost entry is a later miss)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: Fingerprint, name: str) -> ResolvedTemplate | None:
        """The cached template `name` for sources in state `key`, or None."""
        document = self._entries(key).get(name)
        if not isinstance(document, dict):
            return None
        try:
            template = ResolvedTemplate.from_document(document)
            if template.name == name and content_hash(document) == template.hash:
                return template
        except (TypeError, ValueError):  # not a document we wrote: a miss
            pass
        return None

    def store(self, key: Fingerprint, template: ResolvedTemplate) -> None:
        """Add `template`, resolved from sources in state `key` and accepted by every validator."""
        entries = self._entries(key)
        entries[template.name] = template.document()
        data = {"format": FORMAT, "key": json.loads(key.canonical), "templates": entries}
        if write_json(self.directory / key.file_name, data):
            prune(self.directory, f"{PREFIX}*.json", MAX_FILES)

    def _entries(self, key: Fingerprint) -> dict[str, Any]:
        """The stored documents for state `key` (empty when the file is absent or not ours)."""
        data = read_json(self.directory / key.file_name)
        try:
            if (
                isinstance(data, dict)
                and data.get("format") == FORMAT
                and isinstance(data.get("templates"), dict)
                and canonical_json(data.get("key")) == key.canonical
            ):
                return dict(data["templates"])
        except (TypeError, ValueError):  # a key that is not plain JSON (NaN...): not ours
            pass
        return {}


def _plain(value: Any) -> Any:
    """A settings value as JSON: paths as strings, sets sorted."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(str(item) for item in value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _file(path: Path) -> list[Any]:
    try:
        return [str(path), hashlib.sha256(path.read_bytes()).hexdigest()]
    except OSError:  # unreadable: the slow path reports it; the same state may be cached
        return [str(path), None]


def _contribution(item: Path | Mapping[str, Any]) -> list[Any]:
    if not isinstance(item, Path):
        return ["document", dict(item)]
    if item.is_dir():
        return ["directory", str(item.resolve()), [_file(p) for p in template_files(item)]]
    return ["file", *_file(item.resolve())]


def _code_files(plugin_manager: pluggy.PluginManager | None) -> list[Path]:
    files = [_CORE / name for name in _CORE_CODE]
    if plugin_manager is not None:
        for impl in plugin_manager.hook.agentfactory_validate_template.get_hookimpls():
            module = sys.modules.get(getattr(impl.function, "__module__", "") or "")
            source = getattr(module, "__file__", None)
            if source:
                files.append(Path(source))
    return files


def _stamp(path: Path) -> list[Any]:
    try:
        stat = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]
