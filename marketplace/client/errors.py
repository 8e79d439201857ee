"""Errors of the marketplace client, CLI and installer.

Every refusal is a `MarketplaceError` (an `AgentFactoryError`), so the CLI prints it as one line
and exits non-zero. Each error carries the offending values as attributes; `str(err)` is a
complete sentence a user can act on. Server-side refusals arrive as RFC 9457 problem details and
become `ApiError` with the server's own `detail`, never a raw HTTP dump.
"""

from __future__ import annotations

from typing import Any

from core.errors import AgentFactoryError


class MarketplaceError(AgentFactoryError):
    """Root of the marketplace client's deliberate errors."""


class ApiError(MarketplaceError):
    """The registry answered with an error (a problem-details document when it could)."""

    def __init__(self, status: int, code: str, detail: str, title: str = "") -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        super().__init__(f"{detail} (HTTP {status}{', ' + code if code else ''})")

    @classmethod
    def from_problem(cls, status: int, body: Any, fallback: str = "") -> ApiError:
        """Build from a decoded problem-details body; tolerate servers that send something else.

        A validation problem (one listing field `errors`) is told in the user's terms: each
        field without its request location (`body.stars` is the user's `stars`), and without the
        server's exception name, which means nothing to someone typing a command.
        """
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or fallback or "request failed")
            code = str(body.get("code") or "")
            fields = _field_errors(body.get("errors"))
            if fields:
                error = cls(status, "", "; ".join(fields), str(body.get("title") or ""))
                error.code = code  # still there for callers that match on it
                return error
            return cls(status, code, detail, str(body.get("title") or ""))
        return cls(status, "", fallback or f"request failed with HTTP {status}")


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field_errors(errors: Any) -> list[str]:
    """`path: message` for each `{path, message}` of a problem's `errors`, location dropped."""
    if not isinstance(errors, list):
        return []
    lines = []
    for item in errors:
        if not isinstance(item, dict) or not item.get("message"):
            continue
        parts = str(item.get("path") or "").split(".")
        if parts and parts[0] in _LOCATIONS:
            parts = parts[1:]
        field = ".".join(parts)
        lines.append(f"{field}: {item['message']}" if field else str(item["message"]))
    return lines


class ConnectionFailed(MarketplaceError):
    """Nothing answered at `url`; the message says how to start a server or point elsewhere."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the marketplace at {url}: {reason}; start one with "
            "`agentfactory serve`, or point to another with --url or AGENTFACTORY_URL"
        )


class NotLoggedIn(MarketplaceError):
    """A write needs a token and none was configured."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(
            f"{action} needs an API token: run `agentfactory register`, pass --token "
            "or set AGENTFACTORY_TOKEN"
        )


class ConfigError(MarketplaceError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"bad configuration in {path}: {reason}")


class InvalidRequirement(MarketplaceError):
    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid requirement {text!r}: {reason}")


class DownloadTooLarge(MarketplaceError):
    def __init__(self, name: str, size: int, limit: int) -> None:
        self.name = name
        self.size = size
        self.limit = limit
        super().__init__(f"download of {name} exceeds the size cap ({size} > {limit} bytes)")


class DigestMismatch(MarketplaceError):
    def __init__(self, name: str, expected: str, actual: str) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"download of {name} is corrupt or tampered: sha256 {actual[:16]}… "
            f"!= expected {expected[:16]}…"
        )


class KeyChanged(MarketplaceError):
    """The publisher signs with a key other than the pinned one, with no valid rotation chain."""

    def __init__(self, name: str, pinned: str, offered: str) -> None:
        self.name = name
        self.pinned = pinned
        self.offered = offered
        super().__init__(
            f"publisher {name!r} now signs with key {offered!r}, but key {pinned!r} is pinned "
            "and the registry shows no rotation signed by it; refusing"
        )


class ResolutionConflict(MarketplaceError):
    """Two requirements on the same agent cannot both be satisfied."""

    def __init__(self, req_a: str, req_b: str) -> None:
        self.req_a = req_a
        self.req_b = req_b
        super().__init__(f"conflicting requirements: {req_a} and {req_b}")


class NotInstalled(MarketplaceError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name} is not installed")


class VettingFailed(MarketplaceError):
    """The package's own examples failed in the sandbox: it is not installed."""

    def __init__(self, name: str, version: str, reasons: list[str]) -> None:
        self.name = name
        self.version = version
        self.reasons = reasons
        super().__init__(f"{name} {version} failed vetting in the sandbox: {'; '.join(reasons)}")


class LockfileError(MarketplaceError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"lockfile {path}: {reason}")


class ScaffoldError(MarketplaceError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot scaffold {path}: {reason}")


class SigningKeyMissing(MarketplaceError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no signing key at {path}: run `agentfactory keygen` first")


class StillRequired(MarketplaceError):
    """Uninstalling would break another installed agent that requires this one."""

    def __init__(self, name: str, required_by: list[str]) -> None:
        self.name = name
        self.required_by = required_by
        super().__init__(f"{name} is required by {', '.join(required_by)}; uninstall those first")


class UntrustedPackage(MarketplaceError):
    """What the registry served does not match what was asked or what the key may sign."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"refusing {name}: {reason}")


class KeyFileExists(MarketplaceError):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"a signing key already exists at {path}; pass --force to replace it "
            "or --rotate to rotate it"
        )


class PublisherChanged(KeyChanged):
    """The registry names another publisher (or none) for a namespace pinned to a publisher:
    refused exactly like a changed key, since the pin decides who may sign there."""

    def __init__(self, package: str, pinned: str, claimed: str, key_id: str) -> None:
        self.package = package
        self.claimed = claimed
        self.name, self.pinned, self.offered = pinned, key_id, key_id  # as `KeyChanged`
        MarketplaceError.__init__(
            self,
            f"{package}: the registry says it is published by {claimed or 'nobody'!r}, but its "
            f"namespace is pinned to publisher {pinned!r} (key {key_id!r}); refusing",
        )


class InsecureUrl(MarketplaceError):
    """A registry URL over plain http to a host other than this machine."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"refusing plain http to {url}: use https, or pass --insecure-http "
            "(AGENTFACTORY_ALLOW_HTTP=1) to accept an unencrypted, forgeable connection"
        )


class DowngradeRefused(MarketplaceError):
    """Installing would move an installed agent to a lower version nobody asked for by `==`."""

    def __init__(self, name: str, installed: str, offered: str, reason: str) -> None:
        self.name = name
        self.installed = installed
        self.offered = offered
        super().__init__(
            f"{name} {installed} is installed; {reason} {offered} — refusing to downgrade; "
            f"install '{name}=={offered}' to downgrade on purpose"
        )


class InstalledFilesChanged(MarketplaceError):
    """An installed agent's files no longer match the signed record made at install."""

    def __init__(self, name: str, path: str, reason: str) -> None:
        self.name = name
        self.path = path
        self.reason = reason
        super().__init__(
            f"refusing to load {name}: {path} {reason}; "
            f"reinstall it with `agentfactory install --locked {name}`"
        )


class RevocationListInvalid(MarketplaceError):
    """A revocation list (fetched, or cached in `path`) that cannot be believed: its signature
    does not verify, it is signed by another key than the one this home trusts, or it is older
    than one already seen (a replay hiding a revocation). `reason` says which."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"revocation list {path} refused: {reason}")
