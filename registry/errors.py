"""Errors of the registry.

Every refusal of the registry is a `RegistryError` (itself an `AgentFactoryError`), and every
error carries the offending value as an attribute so the API edge and the CLI can report it
without parsing messages. `str(err)` is always one complete line.
"""

from __future__ import annotations

from core.errors import AgentFactoryError, describe_field_errors


class RegistryError(AgentFactoryError):
    """Root of the registry's deliberate errors."""


class ManifestError(RegistryError):
    """`agent.json` (or a template it lists) is missing or invalid. `errors` holds (path, msg)."""

    def __init__(self, source: str, errors: list[tuple[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(describe_field_errors(source, errors))


class ArchiveError(RegistryError):
    """The archive is not a valid package archive."""

    def __init__(self, message: str, entry: str | None = None) -> None:
        self.entry = entry
        super().__init__(message)


class UnsafeEntry(ArchiveError):
    """An entry would escape the extraction directory or is not a regular file."""

    def __init__(self, entry: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unsafe archive entry {entry!r}: {reason}", entry)


class ArchiveTooLarge(ArchiveError):
    """A cap (size, file count, compression ratio) was exceeded."""

    def __init__(self, what: str, value: float, limit: float, entry: str | None = None) -> None:
        self.what = what
        self.value = value
        self.limit = limit
        where = f" at entry {entry!r}" if entry else ""
        super().__init__(f"archive {what} {value:g} exceeds the limit {limit:g}{where}", entry)


class SignatureMismatch(RegistryError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"signature does not verify with key {key_id!r}")


class UnknownKey(RegistryError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"unknown signing key {key_id!r}")


class RevokedKey(RegistryError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(f"signing key {key_id!r} has been revoked")


class InvalidKey(RegistryError):
    """Key material that cannot be loaded (bad bytes, wrong passphrase, wrong type)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid key: {reason}")


class InvalidVersion(RegistryError):
    def __init__(self, version: str) -> None:
        self.version = version
        super().__init__(f"invalid version {version!r} (PEP 440 expected)")


class InvalidName(RegistryError):
    """`what` says which name it is: a package name, a namespace or a publisher name."""

    def __init__(self, name: str, reason: str, what: str = "package name") -> None:
        self.name = name
        self.reason = reason
        self.what = what
        super().__init__(f"invalid {what} {name!r}: {reason}")


class DuplicateRelease(RegistryError):
    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(f"{name} {version} already exists; publish a new version")


class DuplicateDigest(RegistryError):
    def __init__(self, digest: str, existing: str) -> None:
        self.digest = digest
        self.existing = existing
        super().__init__(
            f"an identical archive ({digest[:12]}…) is already published as {existing}"
        )


class ReservedName(RegistryError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"package name {name!r} is reserved")


class LookalikeName(RegistryError):
    """`what` is "package name" or "namespace" (one held by another publisher)."""

    def __init__(self, name: str, existing: str, what: str = "package name") -> None:
        self.name = name
        self.existing = existing
        self.what = what
        other = "existing package" if what == "package name" else f"another publisher's {what}"
        super().__init__(f"{what} {name!r} is too similar to {other} {existing!r}")


class NotFound(RegistryError):
    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class AuthenticationError(RegistryError):
    def __init__(self, reason: str = "invalid or revoked token") -> None:
        self.reason = reason
        super().__init__(f"authentication failed: {reason}")


class PermissionDenied(RegistryError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"permission denied: {reason}")


class InvalidReview(RegistryError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid review: {reason}")


class VettingFailed(RegistryError):
    """The package's own examples failed in the sandbox; `failures` says which and how."""

    def __init__(self, name: str, version: str, failures: tuple[str, ...]) -> None:
        self.name = name
        self.version = version
        self.failures = failures
        shown = "; ".join(failures[:3])
        if len(failures) > 3:
            shown += f" (+{len(failures) - 3} more)"
        super().__init__(f"{name} {version} failed vetting in the sandbox: {shown}")


class NoMatchingRelease(RegistryError):
    def __init__(self, name: str, specifier: str) -> None:
        self.name = name
        self.specifier = specifier
        spec = specifier or "(any version)"
        super().__init__(f"no release of {name} matches {spec}")


class Conflict(RegistryError):
    """A uniqueness rule enforced by the database refused a write (e.g. a name taken)."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"conflict: {what}")


class ConcurrentCreation(Conflict):
    """Another upload created the same new package first; publishing again will succeed."""

    def __init__(self, package: str) -> None:
        self.package = package
        super().__init__(f"{package} was created by a concurrent upload; publish again")


class InvalidQuery(RegistryError):
    """A search or resolve parameter is malformed (a sort order, a version specifier)."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {field} {value!r}: {reason}")


class SchemaMismatch(RegistryError):
    """The database holds registry tables that its migration history does not explain.

    `differences` lists what differs from the models (one line each), so an operator can see
    why the database was refused instead of having it silently altered.
    """

    def __init__(self, url: str, differences: list[str]) -> None:
        self.url = url
        self.differences = differences
        shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
        super().__init__(
            f"the database at {url} has registry tables without migration history that do not "
            f"match the models ({shown}); migrate or recreate it"
        )


class ReleaseRevoked(NotFound):
    """`name` `version` was revoked (compromised or malicious): it must not be installed or run
    anywhere. A `NotFound` (404) to the API: the release is no longer offered."""

    def __init__(self, name: str, version: str, reason: str) -> None:
        super().__init__("release", f"{name} {version}")
        self.name = name
        self.version = version
        self.reason = reason
        self.args = (f"{name} {version} is revoked: {reason}; it must not run",)


class BlobStoreUnavailable(RegistryError):
    """The blob store cannot be used: its bucket is missing, refuses us, or does not answer.
    `location` names the bucket and prefix (`s3://bucket/prefix`), never a credential."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"blob store {location} is unavailable: {reason}")
