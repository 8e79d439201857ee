"""Registry configuration: limits and knobs in one small dataclass.

Defaults are safe for a public registry; tests and benchmarks pass smaller or larger values
explicitly rather than patching module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_RESERVED = frozenset(
    {
        "admin", "agentfactory", "api", "core", "registry", "marketplace", "sandbox", "plugins",
        "root", "system", "official", "security", "www", "static", "login", "new", "search",
    }
)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied when reading an archive, before anything is decompressed in full."""

    max_archive_bytes: int = 10 * 1024 * 1024
    max_files: int = 500
    max_total_bytes: int = 50 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    # Text compresses ~5-10x; 100x means a crafted bomb, not source code.
    max_ratio: float = 100.0


@dataclass(frozen=True)
class RegistryConfig:
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    # Bayesian prior weight C: how many "average" votes every package starts with.
    prior_weight: float = 5.0
    # A new name one edit away from a package with at least this many downloads is refused.
    lookalike_downloads: int = 1000
    # Reserved short names and namespaces (already normalized).
    reserved_names: frozenset[str] = DEFAULT_RESERVED
    # Namespaces nobody may register (the project's own).
    reserved_namespaces: frozenset[str] = DEFAULT_RESERVED
    max_review_title: int = 200
    max_review_body: int = 10_000
    # Tools of `core.security.DENIED_TOOLS` a published template may still ask for (none by
    # default: the marketplace refuses shell, network and filesystem tools at upload).
    allowed_tools: frozenset[str] = frozenset()
