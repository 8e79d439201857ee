"""The `agentfactory` entry points of the installed distributions, cached on disk.

Listing entry points through `importlib.metadata` imports that package (email parsing, zipfile,
csv...) and reads the metadata of every installed distribution: for a one-shot command that runs
a built-in agent, as much time as everything else it does. The command line asks
`cached_entry_points` instead, which reuses the list it stored last time while its key matches:
the interpreter, `sys.path`, and for each path entry the (mtime, size, inode) of the
`entry_points.txt` of every `*.dist-info` and `*.egg-info` in it (of the entry itself when it is
a file, such as a zip). Installing, removing, upgrading or editing a distribution changes the
key; the list is then read through `importlib.metadata`, exactly as without the cache, and stored.

Invariants:
- a hit gives the `(name, value)` pairs, in the same order, that `entry_points(group=...)`
  gave when they were stored, and loading one imports what `EntryPoint.load` would;
- the key is taken before `importlib.metadata` reads anything, so a distribution installed
  meanwhile leaves a key that no later state matches;
- when a meta-path finder other than the standard path finder can provide distributions, the
  cache is not used;
- a garbage or foreign cache file is a miss; see `core.cachefiles` for how files are written.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.cachefiles import prune, read_json, write_json
from core.hashing import canonical_json

FORMAT = 1
MAX_FILES = 8
PREFIX = "entry-points-"
_METADATA_DIRS = (".dist-info", ".egg-info")


class EntryPointLike(Protocol):
    """What loading a plugin needs of an entry point (`importlib.metadata.EntryPoint` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class CachedEntryPoint:
    """An entry point read from the cache: `value` is `module[:attr.attr][ [extras]]`."""

    name: str
    value: str

    def load(self) -> Any:
        """Import the module and walk the attributes, as `EntryPoint.load` does."""
        module_name, _, attrs = self.value.partition("[")[0].partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for attr in filter(None, attrs.strip().split(".")):
            target = getattr(target, attr)
        return target


def cached_entry_points(group: str, directory: Path) -> Sequence[EntryPointLike]:
    """The entry points of `group`, sorted by name, from the cache in `directory` when valid."""
    key = _key(group)
    if key is None:
        return _read(group)
    try:
        digest = hashlib.sha256(canonical_json(key["configuration"])).hexdigest()[:16]
    except ValueError:  # a path on sys.path that cannot be encoded
        return _read(group)
    path = directory / f"{PREFIX}{digest}.json"
    stored = read_json(path)
    if isinstance(stored, dict) and stored.get("key") == key:
        pairs = stored.get("entry_points")
        if isinstance(pairs, list) and all(_is_pair(pair) for pair in pairs):
            return [CachedEntryPoint(name, value) for name, value in pairs]
    entries = _read(group)
    document = {"key": key, "entry_points": [[ep.name, ep.value] for ep in entries]}
    if write_json(path, document):
        prune(directory, f"{PREFIX}*.json", MAX_FILES)
    return entries


def _read(group: str) -> list[EntryPointLike]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
    )


def _key(group: str) -> dict[str, Any] | None:
    """What the entry points of `group` depend on, as plain JSON; None when it cannot be known."""
    from importlib.machinery import PathFinder

    finders = [f for f in sys.meta_path if hasattr(f, "find_distributions")]
    if finders != [PathFinder]:
        return None
    configuration = {
        "format": FORMAT,
        "group": group,
        "executable": sys.executable,
        "python": sys.version,
        "path": [os.path.abspath(entry) for entry in sys.path],
    }
    return {"configuration": configuration, "stamps": [_stamps(entry) for entry in sys.path]}


def _stamps(entry: str) -> list[Any]:
    try:
        with os.scandir(entry or ".") as children:
            infos = sorted(c.path for c in children if c.name.lower().endswith(_METADATA_DIRS))
    except NotADirectoryError:
        return [_stamp(entry)]
    except OSError:
        return []
    base = os.path.basename(entry).lower()
    if base.endswith(".egg"):  # an unzipped egg keeps its metadata in `EGG-INFO`
        infos.append(os.path.join(entry, "EGG-INFO"))
    return [[info, _stamp(os.path.join(info, "entry_points.txt"))] for info in infos]


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]
