"""The catalog: every unresolved template the manager knows, as an immutable snapshot.

A `Catalog` is never modified after it is built. Changes (a file edited, a plugin registered)
build a new catalog from the old one and the manager swaps the reference under its lock, so a
reader holding a catalog always sees one consistent set of templates — old or new, never torn.

Precedence when several sources define the same name: a higher `layer` wins (built-ins are layer
0, plugin contributions layer 1, operator directories 2, 3, ... in configuration order); within a
layer, the later source key (sorted path) wins.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.errors import TemplateError
from core.loader import SUFFIXES, load_template_file, parse_template

if TYPE_CHECKING:
    from core.template import AgentTemplate

LAYER_BUILTIN = 0
LAYER_PLUGIN = 1
LAYER_OPERATOR = 2


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One unresolved template and where it came from."""

    template: AgentTemplate
    source: str  # a file path, or "plugin NAME" for a document returned by a plugin
    origin: str  # "builtin", "operator" or "plugin:NAME"
    layer: int
    path: Path | None = None
    mtime_ns: int = 0


@dataclass(frozen=True, slots=True)
class SourceDir:
    """A watched directory of template files."""

    path: Path
    layer: int
    origin: str


@dataclass(frozen=True)
class Catalog:
    """An immutable snapshot. `sources` maps a source key to the records it contributed."""

    generation: int = 0
    sources: Mapping[str, tuple[TemplateRecord, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    errors: Mapping[str, TemplateError] = field(default_factory=lambda: MappingProxyType({}))
    by_name: Mapping[str, TemplateRecord] = field(default_factory=lambda: MappingProxyType({}))

    def lookup(self, name: str) -> AgentTemplate | None:
        record = self.by_name.get(name)
        return None if record is None else record.template

    def error_for(self, name: str) -> TemplateError | None:
        """The load error of a file named after `name` (`name.json`), to explain a miss."""
        stem = name.rsplit("/", 1)[-1]
        for key, error in self.errors.items():
            base = Path(key).name
            if any(base == stem + suffix for suffix in SUFFIXES):
                return error
        return None


def build(
    generation: int,
    sources: Mapping[str, tuple[TemplateRecord, ...]],
    errors: Mapping[str, TemplateError],
) -> Catalog:
    """Freeze `sources` and `errors` into a catalog and compute the name index."""
    ordered = sorted(sources.items(), key=lambda item: (_layer(item[1]), item[0]))
    by_name: dict[str, TemplateRecord] = {}
    for _key, records in ordered:
        for record in records:
            by_name[record.template.name] = record
    return Catalog(
        generation,
        MappingProxyType(dict(sources)),
        MappingProxyType(dict(errors)),
        MappingProxyType(by_name),
    )


def _layer(records: tuple[TemplateRecord, ...]) -> int:
    return records[0].layer if records else 0


@dataclass
class LoadTimer:
    """Accumulates file load latency for the manager's metrics."""

    count: int = 0
    total_s: float = 0.0


def load_file(path: Path, layer: int, origin: str, timer: LoadTimer) -> TemplateRecord:
    """Load one template file into a record (raises `TemplateError`)."""
    start = time.perf_counter()
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        mtime_ns = 0
    template = load_template_file(path)
    timer.count += 1
    timer.total_s += time.perf_counter() - start
    return TemplateRecord(template, str(path), origin, layer, path, mtime_ns)


def load_document(
    document: Mapping[str, Any], plugin: str, layer: int, timer: LoadTimer
) -> TemplateRecord:
    """Validate a template document returned by plugin `plugin`."""
    start = time.perf_counter()
    template = parse_template(document, f"plugin {plugin!r}")
    timer.count += 1
    timer.total_s += time.perf_counter() - start
    return TemplateRecord(template, f"plugin {plugin}", f"plugin:{plugin}", layer)
