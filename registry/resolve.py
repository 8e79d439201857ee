"""Choosing a release for a version specifier.

`resolve` returns the highest release whose version the `packaging` `SpecifierSet` contains,
never comparing versions as strings. Yanked releases are skipped, except that an exact pin
(`==V` or `===V`, no wildcard) still returns its release even when yanked, as PEP 592 asks, so
locked installs keep working. A revoked release is never returned: an exact pin to one is
`ReleaseRevoked`, with the revocation's reason. Pre-releases are considered when
`prereleases=True` or when the specifier itself names one (`>=2.0b1`), following `packaging`'s
rules.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version
from sqlmodel import Session, select

from registry.errors import InvalidQuery, NoMatchingRelease, NotFound, ReleaseRevoked
from registry.models import Package, Release
from registry.names import normalize_name


@lru_cache(maxsize=65536)
def parse_version(version: str) -> Version:
    """Versions are parsed once per process: resolving over many releases stays cheap."""
    return Version(version)


@lru_cache(maxsize=4096)
def parse_specifier(specifier: str) -> SpecifierSet:
    try:
        return SpecifierSet(specifier)
    except InvalidSpecifier:
        raise InvalidQuery("specifier", specifier, "not a PEP 440 version specifier") from None


def is_exact_pin(spec: SpecifierSet) -> bool:
    items = list(spec)
    return (
        len(items) == 1
        and items[0].operator in ("==", "===")
        and not items[0].version.endswith(".*")
    )


@lru_cache(maxsize=256)
def _descending(versions: tuple[str, ...]) -> tuple[int, ...]:
    """Indexes of `versions` from highest to lowest; cached, since a package's version list
    changes only on publish, and sorting a thousand versions costs more than resolving."""
    return tuple(sorted(range(len(versions)), key=lambda i: parse_version(versions[i]),
                        reverse=True))


def choose(
    candidates: list[tuple[int, str, bool]], specifier: str, prereleases: bool = False
) -> int | None:
    """The id of the best `(id, version, yanked)` candidate for `specifier`, or None."""
    spec = parse_specifier(specifier)
    allow_yanked = is_exact_pin(spec)
    # Decided explicitly: packaging's default for prereleases changed across releases.
    allow_pre = prereleases or spec.prereleases is True
    for index in _descending(tuple(c[1] for c in candidates)):
        release_id, version, yanked = candidates[index]
        if yanked and not allow_yanked:
            continue
        parsed = parse_version(version)
        if parsed.is_prerelease and not allow_pre:
            continue
        if spec.contains(parsed, prereleases=True):
            return release_id
    return None


def find_package(session: Session, name: str, *, lock: bool = False) -> Package:
    """The package row; `lock` takes its row lock (PostgreSQL) for a read-modify-write."""
    query = select(Package).where(Package.normalized_name == normalize_name(name))
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("package", name)
    return row


def resolve(
    session: Session, name: str, specifier: str = "", prereleases: bool = False
) -> tuple[Package, Release]:
    package = find_package(session, name)
    candidates = session.execute(
        select(Release.id, Release.version, Release.yanked, Release.revoked).where(
            Release.package_id == package.id
        )
    ).all()
    # A revoked release counts as yanked, so only an exact pin can reach it, to be refused.
    chosen = choose([(r[0], r[1], r[2] or r[3]) for r in candidates], specifier, prereleases)
    if chosen is None:
        raise NoMatchingRelease(package.name, specifier)
    release = session.get(Release, chosen)
    assert release is not None
    if release.revoked:
        from registry.retire import revocation_of

        revocation = revocation_of(session, release)
        reason = revocation.reason if revocation else "revoked"
        raise ReleaseRevoked(package.name, release.version, reason)
    return package, release
