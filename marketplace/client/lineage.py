"""Cross-package `extends`, pinned by content hash in the lockfile.

A package's template may extend a template the package does not ship: a built-in template
(`templates/`) or a template of another installed package (templates are namespaced by their
package's namespace, so a parent's name says where it may come from). The factory resolves such
a chain at run time like any other; this module makes the parent part of what was installed.

Invariants:
- at install, every parent outside the package must be found among the built-ins, the packages
  already installed and the packages the same operation installs (`ParentTemplateMissing`
  otherwise, nothing installed). The lock entry gets one `LineagePin` per (template, outside
  parent): the parent's *resolved* content hash (`core.inheritance`'s `metadata["hash"]`, which
  covers the parent's own ancestors too), with the package and version that provided it;
- parents are resolved exactly as the running factory sees them: an installed template carries
  its package's name as `implementation` (`installed.InstalledAgents`), so the pinned hash is
  the hash the factory computes;
- loading an installed package (`installed.InstalledAgents`) and `install --locked` refuse a
  package whose pinned parent now hashes differently (`LineageChanged`, naming both hashes) or
  is gone (`ParentTemplateMissing`); the package is not offered, its neighbours are;
- `install --locked NAME` reinstalls the locked packages NAME's pins name, so another machine
  reproduces the exact lineage (`pinned_packages`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import AgentFactoryError
from core.template import AgentTemplate
from marketplace.client.errors import MarketplaceError
from marketplace.client.lockfile import LineagePin, LockEntry
from registry.archive import Package
from registry.names import normalize_name


class LineageError(MarketplaceError):
    """A template's cross-package parent is not what the lockfile pinned."""


class ParentTemplateMissing(LineageError):
    def __init__(self, package: str, template: str, parent: str) -> None:
        self.package, self.template, self.parent = package, template, parent
        super().__init__(
            f"{package}: template {template} extends {parent}, which neither a built-in "
            f"template nor an installed package provides; install the package that ships "
            f"{parent} first (or declare it in `requires`)"
        )


class LineageChanged(LineageError):
    def __init__(self, package: str, pin: LineagePin, found: str) -> None:
        self.package, self.pin, self.found = package, pin, found
        source = f"{pin.package} {pin.version}" if pin.package else "the built-in templates"
        super().__init__(
            f"refusing to load {package}: its template {pin.template} extends {pin.parent} "
            f"(from {source}), whose content hash is now sha256:{found} but agentfactory.lock "
            f"pinned sha256:{pin.hash}; restore the pinned parent with "
            f"`agentfactory install --locked {package}`"
        )


def template_doc(package: Package, path: str) -> dict[str, Any]:
    """Template `path` of `package` as the factory loads it (see the module's invariants)."""
    doc: dict[str, Any] = json.loads(package.files[path])
    if "workflow" not in doc:  # a workflow is run by the factory's `workflow` plugin
        doc.setdefault("implementation", normalize_name(package.manifest.name))
    return doc


@dataclass
class TemplateIndex:
    """The templates a parent may come from: built-ins, then packages (name -> provider)."""

    templates: dict[str, AgentTemplate] = field(default_factory=dict)
    providers: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (package, version)
    _hashes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, packages: Iterable[Package], *, builtin: bool = True) -> TemplateIndex:
        from core.loader import load_template_file, parse_template, template_files
        from core.paths import builtin_templates_dir

        index = cls()
        if builtin:
            for file in template_files(builtin_templates_dir()):
                try:
                    template = load_template_file(file)
                except AgentFactoryError:  # the factory would not offer it either
                    continue
                index.templates[template.name] = template
        for package in packages:
            for path in package.manifest.templates:
                template = parse_template(template_doc(package, path), path)
                index.templates[template.name] = template
                index.providers[template.name] = (package.manifest.name, package.manifest.version)
        return index

    def lookup(self, name: str) -> AgentTemplate | None:
        return self.templates.get(name)

    def resolved_hash(self, name: str) -> str:
        """The content hash of template `name` resolved through this index."""
        if name not in self._hashes:
            from core.inheritance import resolve

            self._hashes[name] = str(resolve(name, self.lookup).metadata["hash"])
        return self._hashes[name]


def outside_parents(package: Package) -> list[tuple[str, str]]:
    """(template, parent) for each template whose `extends` chain leaves the package."""
    own = {t.name: t for t in package.templates}
    found: list[tuple[str, str]] = []
    for template in package.templates:
        chain, parent = [template.name], template.extends
        while parent is not None and parent in own and parent not in chain:
            chain.append(parent)
            parent = own[parent].extends
        if parent is not None and parent not in own and (template.name, parent) not in found:
            found.append((template.name, parent))
    return found


def pins_for(package: Package, index: TemplateIndex) -> list[LineagePin]:
    """The lineage pins of `package` against `index` (`ParentTemplateMissing` if a parent is
    nowhere)."""
    pins = []
    for template, parent in outside_parents(package):
        if index.lookup(parent) is None:
            raise ParentTemplateMissing(package.manifest.name, template, parent)
        provider, version = index.providers.get(parent, ("", ""))
        pins.append(LineagePin(template=template, parent=parent,
                               hash=index.resolved_hash(parent), package=provider,
                               version=version))
    return pins


def check_lineage(entry: LockEntry, index: TemplateIndex) -> None:
    """Refuse `entry` unless every pinned parent still resolves to its pinned hash."""
    for pin in entry.lineage:
        if index.lookup(pin.parent) is None:
            raise ParentTemplateMissing(entry.name, pin.template, pin.parent)
        found = index.resolved_hash(pin.parent)
        if found != pin.hash:
            raise LineageChanged(entry.name, pin, found)


def pinned_packages(keys: Iterable[str], agents: Mapping[str, LockEntry]) -> list[str]:
    """`keys` and, transitively, the locked packages their lineage pins name, in order."""
    out: list[str] = []
    pending = list(keys)
    while pending:
        key = pending.pop(0)
        if key in out:
            continue
        out.append(key)
        entry = agents.get(key)
        if entry is not None:
            pending += [normalize_name(p.package) for p in entry.lineage if p.package]
    return out
