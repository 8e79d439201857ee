"""Resolve an install request and the agents' own agent requirements with `packaging`.

Invariants:
- versions are compared as `packaging` versions, never as strings; pre-releases are considered
  only when a specifier names one;
- a yanked release is chosen only when a requirement pins it exactly (`==1.1`), as PEP 592 says;
- the requested agent gets the best matching release; a dependency that is already installed and
  still satisfies every requirement is kept, so installing one agent never silently upgrades
  another's dependency;
- when no release satisfies every requirement on an agent, the error names two requirements that
  cannot hold together (`ResolutionConflict(req_a, req_b)`), or the single requirement that no
  release satisfies (`NoMatchingRelease`);
- the resolver is greedy (no backtracking): agent graphs are small and shallow, and a clear
  conflict message beats a slow search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from marketplace.client.errors import InvalidRequirement, ResolutionConflict
from marketplace.client.records import Release
from registry.errors import InvalidName, NoMatchingRelease
from registry.names import normalize_name

_REQ = re.compile(r"^\s*(?P<name>[^\s\[\]<>=!~,;@]+)\s*(?:\[(?P<b>[^\]]*)\]|(?P<spec>.*))\s*$")
MAX_ROUNDS = 200


@dataclass(frozen=True)
class Requirement:
    """`name` (as written), its normalized `key`, a specifier set and who asked for it."""

    name: str
    key: str
    specifier: SpecifierSet
    origin: str = ""

    def __str__(self) -> str:
        spec = str(self.specifier) or " (any version)"
        who = f" (required by {self.origin})" if self.origin else ""
        return f"{self.name}{spec}{who}"

    def allows(self, release: Release) -> bool:
        version = Version(release.version)
        if release.yanked:
            return any(
                s.operator in ("==", "===") and s.contains(version, prereleases=True)
                for s in self.specifier
            )
        # Pre-releases only when a specifier names one (an empty set would accept them).
        return self.specifier.contains(version, prereleases=bool(self.specifier.prereleases))


def parse_requirement(text: str, origin: str = "") -> Requirement:
    """`ns/name`, `ns/name>=1.0,<2`, `ns/name==1.0` or `ns/name[>=1.0]`."""
    match = _REQ.match(text)
    if not match:
        raise InvalidRequirement(
            text,
            "expected 'namespace/name' optionally followed by a version specifier such as '>=1.0'",
        )
    return make_requirement(match["name"], (match["b"] or match["spec"] or "").strip(), origin)


def make_requirement(name: str, spec: str, origin: str = "") -> Requirement:
    try:
        key = normalize_name(name)
    except InvalidName as exc:
        raise InvalidRequirement(name, exc.reason) from None
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        raise InvalidRequirement(f"{name}{spec}", f"bad version specifier {spec!r}") from None
    return Requirement(name, key, specifier, origin)


@dataclass(frozen=True)
class Plan:
    """One agent to install (`release`), or to keep as installed (`keep`)."""

    key: str
    name: str
    release: Release
    requested: bool
    keep: bool = False


@dataclass
class Resolver:
    """Resolve against `releases(name)` (a registry lookup), given what is `installed`.

    `installed` maps a normalized name to (version, requires) of the agents already present.
    """

    releases: Callable[[str], list[Release]]
    installed: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    _cache: dict[str, list[Release]] = field(default_factory=dict)

    def _candidates(self, req: Requirement) -> list[Release]:
        if req.key not in self._cache:
            found = self.releases(req.name)
            try:
                found.sort(key=lambda r: Version(r.version), reverse=True)
            except InvalidVersion as exc:
                raise InvalidRequirement(
                    req.name, f"registry listed a bad version: {exc}"
                ) from None
            self._cache[req.key] = found
        return self._cache[req.key]

    def _pick(self, reqs: list[Requirement], requested: bool) -> tuple[Release, bool]:
        candidates = self._candidates(reqs[0])
        key = reqs[0].key
        if not requested and key in self.installed:
            version = self.installed[key][0]
            for release in candidates:
                if release.version == version and all(r.allows(release) for r in reqs):
                    return release, True
        for release in candidates:
            if all(r.allows(release) for r in reqs):
                return release, False
        for req in reqs:
            if not any(req.allows(r) for r in candidates):
                raise NoMatchingRelease(req.name, str(req.specifier))
        for i, a in enumerate(reqs):
            for b in reqs[i + 1 :]:
                if not any(a.allows(r) and b.allows(r) for r in candidates):
                    raise ResolutionConflict(str(a), str(b))
        raise ResolutionConflict(str(reqs[0]), " and ".join(str(r) for r in reqs[1:]))

    def resolve(self, root: Requirement) -> list[Plan]:
        """The agents to install, dependencies before the agents that need them."""
        constraints: dict[str, list[Requirement]] = {root.key: [root]}
        # Agents already installed keep their own requirements on whatever we pull in.
        for key, (version, requires) in self.installed.items():
            if key == root.key:
                continue  # being replaced: its old requirements no longer apply
            owner = f"{key} {version}"
            for dep, spec in requires.items():
                req = make_requirement(dep, spec, owner)
                constraints.setdefault(req.key, []).append(req)
        chosen: dict[str, tuple[Release, bool]] = {}
        order: list[str] = []
        pending = [root.key]
        rounds = 0
        while pending:
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise ResolutionConflict(str(root), "a requirement cycle that never settles")
            key = pending.pop(0)
            release, keep = self._pick(constraints[key], key == root.key)
            previous = chosen.get(key)
            chosen[key] = (release, keep)
            if key not in order:
                order.append(key)
            if previous and previous[0].version == release.version:
                continue
            owner = f"{constraints[key][0].name} {release.version}"
            for req in self._requires_of(release, owner):
                constraints.setdefault(req.key, []).append(req)
                picked = chosen.get(req.key)
                if (picked is None or not req.allows(picked[0])) and req.key not in pending:
                    pending.append(req.key)
        return [
            Plan(key, constraints[key][0].name, chosen[key][0], key == root.key, chosen[key][1])
            for key in reversed(order)
        ]

    @staticmethod
    def _requires_of(release: Release, owner: str) -> Iterable[Requirement]:
        for dep, spec in sorted(release.requires.items()):
            yield make_requirement(dep, spec, owner)
