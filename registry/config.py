"""Registry configuration: limits and knobs in small frozen dataclasses.

Defaults are safe for a public registry; tests and benchmarks pass smaller or larger values
explicitly rather than patching module globals. Every field a package declares has a bound
here (`ManifestLimits`), and every bound is enforced before the value is stored or rendered;
`docs/registry.md` lists them.
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
class ManifestLimits:
    """Bounds on what a package declares: `agent.json` as a whole and each field, its templates
    and its README. Lengths count characters; `*_bytes` count UTF-8 bytes."""

    manifest_bytes: int = 128 * 1024
    version_chars: int = 64  # the width of the release's version column
    summary_chars: int = 300
    description_chars: int = 20_000
    license_chars: int = 100
    authors: int = 20
    author_chars: int = 200
    homepage_chars: int = 2_000
    keywords: int = 30
    keyword_chars: int = 50
    entry_chars: int = 200
    templates: int = 50
    template_path_chars: int = 200
    template_bytes: int = 64 * 1024
    requires: int = 50
    specifier_chars: int = 200
    permissions: int = 20
    permission_chars: int = 64
    examples: int = 20
    example_name_chars: int = 100
    example_bytes: int = 16 * 1024  # one example as compact JSON (input, expected, checks)
    checks: int = 50  # per example
    # Per template: how many capabilities and tools it may list, and how long each name is.
    capabilities: int = 50
    capability_chars: int = 64
    tools: int = 50
    tool_chars: int = 64
    readme_bytes: int = 512 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied when reading an archive, before anything is decompressed in full."""

    max_archive_bytes: int = 10 * 1024 * 1024
    max_files: int = 500
    max_total_bytes: int = 50 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    # Text compresses ~5-10x; 100x means a crafted bomb, not source code.
    max_ratio: float = 100.0
    manifest: ManifestLimits = field(default_factory=ManifestLimits)


@dataclass(frozen=True)
class RegistryConfig:
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    # Bayesian prior weight C: how many "average" votes every package starts with.
    prior_weight: float = 5.0
    # A namespace one edit away from a namespace another publisher holds is refused when both
    # are at least this long (shorter ones have too many honest neighbours: "ai", "al").
    lookalike_min_length: int = 4
    # Reserved short names and namespaces (already normalized).
    reserved_names: frozenset[str] = DEFAULT_RESERVED
    # Namespaces nobody may register (the project's own).
    reserved_namespaces: frozenset[str] = DEFAULT_RESERVED
    max_review_title: int = 200
    max_review_body: int = 10_000
    # Tools of `core.security.DENIED_TOOLS` a published template may still ask for (none by
    # default: the marketplace refuses shell, network and filesystem tools at upload).
    allowed_tools: frozenset[str] = frozenset()
