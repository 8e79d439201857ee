"""What a release asks of the machine that runs it, and what an upgrade would add.

`Asks` is computed from a verified package (its manifest and templates, never the registry's
unsigned JSON) plus the key that signed it. `diff(old, new)` is a pure function; an upgrade
that *raises* anything must be accepted by the user (`--accept`, or `y` at a prompt on a
terminal), one that asks for less or the same proceeds silently.

What counts, and when the new version asks for more:

- `tools`: every tool the package's templates name, after resolving `extends` inside the
  package (and through `lookup` for parents elsewhere, when given); a new tool raises;
- `permissions`: the manifest's `permissions`; a new one raises;
- `capabilities`: the templates' capabilities; a new one raises;
- `models`: the language models the templates use (`model.name`, or `provider:name`; the
  built-in `local` / `deterministic` model is no model use), and the manifest's `models` when a
  manifest declares them; a new one raises;
- `needs`: what tools and permissions reach outside the sandbox, by their `core.security`
  family — `network` (http, socket, ...), `filesystem` (file writes, deletes, ...), `commands`
  (shell, exec, subprocess, ...); a new need raises;
- `tier`: how much the sandbox vouches for the code, from most to least confined: `no-code`
  (workflows and templates only), `vetted` (code with examples the sandbox runs at install),
  `unvetted` (code with no examples); moving right raises;
- `key_id`: the signing key; another key raises, shown with the rotation that links it to the
  pinned key when there is one.

Removals are shown too but never need consent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from core.errors import AgentFactoryError
from core.security import tool_families
from marketplace.client.errors import MarketplaceError

if TYPE_CHECKING:
    from core.template import AgentTemplate
    from registry.archive import Package

Lookup = Callable[[str], "AgentTemplate | None"]
Tier = Literal["no-code", "vetted", "unvetted"]
TIERS: tuple[Tier, ...] = ("no-code", "vetted", "unvetted")  # most confined first
NEEDS: dict[str, frozenset[str]] = {
    "network": frozenset({"network", "http", "socket", "web_request"}),
    "filesystem": frozenset({"filesystem", "file_write", "file_delete"}),
    "commands": frozenset({"shell", "bash", "exec", "subprocess", "terminal", "python_exec"}),
}
NO_MODEL = ("local", "deterministic")


@dataclass(frozen=True)
class Asks:
    """What one release asks for. Sets are compared, never their order."""

    tools: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    capabilities: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    tier: Tier = "no-code"
    key_id: str = ""
    rotated_from: tuple[str, ...] = ()  # earlier pinned keys the signing key rotated from


@dataclass(frozen=True)
class Change:
    """One line of a diff: `+ tool: http_fetch`, `- model: fast`, `tier: vetted → unvetted`."""

    sign: Literal["+", "-", "~"]
    kind: str
    value: str

    def __str__(self) -> str:
        if self.sign == "~":
            return f"{self.kind}: {self.value}"
        return f"{self.sign} {self.kind}: {self.value}"


@dataclass(frozen=True)
class AskDiff:
    raised: tuple[Change, ...] = ()  # what needs the user's consent
    lowered: tuple[Change, ...] = ()  # what the new version no longer asks for

    @property
    def needs_consent(self) -> bool:
        return bool(self.raised)

    def lines(self) -> list[str]:
        return [str(c) for c in (*self.raised, *self.lowered)]


@dataclass(frozen=True)
class Upgrade:
    """Moving installed `name` from `old_version` to `new_version`, and what that adds."""

    name: str
    old_version: str
    new_version: str
    diff: AskDiff = field(default_factory=AskDiff)


class UpgradeNeedsConsent(MarketplaceError):
    """An upgrade asks for more than the installed version and the user did not accept it."""

    def __init__(self, upgrade: Upgrade) -> None:
        self.upgrade = upgrade
        added = ", ".join(str(c) for c in upgrade.diff.raised)
        super().__init__(
            f"{upgrade.name} {upgrade.old_version} → {upgrade.new_version} asks for more "
            f"({added}); nothing was installed: run again with --accept to allow it"
        )


def _model_of(template: AgentTemplate) -> str | None:
    provider, name = template.model.provider, template.model.name
    if (provider, name) == NO_MODEL:
        return None
    return name if provider in ("", "local") or ":" in name else f"{provider}:{name}"


def needs_of(names: Iterable[str]) -> frozenset[str]:
    """The outside-the-sandbox needs of tools or permissions `names` (see the module doc)."""
    families = frozenset().union(*(tool_families(n) for n in names))
    return frozenset(need for need, members in NEEDS.items() if families & members)


def _resolved(package: Package, lookup: Lookup | None) -> list[AgentTemplate]:
    """The package's templates with `extends` resolved where the parents can be found; a
    template whose chain cannot be resolved counts with its own fields."""
    from core.inheritance import resolve

    own = {t.name: t for t in package.templates}

    def find(name: str) -> AgentTemplate | None:
        return own.get(name) or (lookup(name) if lookup is not None else None)

    out: list[AgentTemplate] = []
    for template in package.templates:
        try:
            out.append(resolve(template.name, find) if template.extends else template)
        except AgentFactoryError:  # a parent not here: what the template itself asks
            out.append(template)
    return out


def asks_of(
    package: Package, key_id: str = "", *, rotated_from: Iterable[str] = (),
    lookup: Lookup | None = None,
) -> Asks:
    """What `package` (verified) signed by `key_id` asks for."""
    templates = _resolved(package, lookup)
    manifest = package.manifest
    tools = frozenset(t for template in templates for t in template.tools)
    permissions = frozenset(manifest.permissions)
    models = {m for template in templates if (m := _model_of(template)) is not None}
    # The manifest's `models` (what its code may call through the sandbox host), read with
    # getattr so this module also works with manifests from before the field existed.
    declared = getattr(manifest, "models", None)
    if isinstance(declared, list | tuple | frozenset | set | dict):  # names (or name -> use)
        models.update(str(m) for m in declared)
    has_code = manifest.entry_path in package.files
    tier: Tier = "no-code" if not has_code else ("vetted" if manifest.examples else "unvetted")
    return Asks(
        tools=tools,
        permissions=permissions,
        capabilities=frozenset(c for template in templates for c in template.capabilities),
        models=frozenset(models),
        needs=needs_of(tools | permissions),
        tier=tier,
        key_id=key_id,
        rotated_from=tuple(rotated_from),
    )


def _short(key_id: str) -> str:
    return f"{key_id[:12]}…" if len(key_id) > 12 else key_id


def diff(old: Asks, new: Asks) -> AskDiff:
    """What `new` asks for beyond `old` (raised) and what it dropped (lowered). Pure."""
    raised: list[Change] = []
    lowered: list[Change] = []
    for kind, before, after in (
        ("tool", old.tools, new.tools),
        ("permission", old.permissions, new.permissions),
        ("capability", old.capabilities, new.capabilities),
        ("model", old.models, new.models),
        ("needs", old.needs, new.needs),
    ):
        raised += [Change("+", kind, value) for value in sorted(after - before)]
        lowered += [Change("-", kind, value) for value in sorted(before - after)]
    step = TIERS.index(new.tier) - TIERS.index(old.tier)
    if step:
        change = Change("~", "sandbox tier", f"{old.tier} → {new.tier}")
        (raised if step > 0 else lowered).append(change)
    if old.key_id and new.key_id and new.key_id != old.key_id:
        how = (f" (rotated from {_short(old.key_id)}, each step signed by the key before)"
               if old.key_id in new.rotated_from else " (not a rotation of the installed key)")
        raised.append(Change("~", "key", f"{_short(old.key_id)} → {_short(new.key_id)}{how}"))
    return AskDiff(tuple(raised), tuple(lowered))
