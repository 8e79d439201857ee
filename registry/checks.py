"""Publish-time checks of a package's contents, beyond the shape of its manifest.

`check_package_contents` runs in the `validate` step, after `archive.validate_contents` has
parsed the templates, and refuses what would otherwise only fail (or mislead) on a user's
machine at install or run time:

- a README or template file over its byte bound (`ManifestLimits.readme_bytes`,
  `template_bytes`);
- a template listing too many capabilities or tools, or one that is too long; a tool name
  outside `[A-Za-z0-9][A-Za-z0-9_.:/-]*` (an invisible or look-alike character could otherwise
  dodge the tool deny-list, which is matched on spelling);
- two templates of one package with the same name (one would silently shadow the other);
- a template whose `extends` names itself, or a chain of the package's templates that comes
  back to where it started (`core.inheritance` would refuse it only when resolving).

Every refusal is a `ManifestError` naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from core.template import AgentTemplate
from registry.archive import READMES
from registry.config import ManifestLimits
from registry.errors import ManifestError
from registry.manifest import Manifest

TOOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")  # used with fullmatch


def _names(
    path: str, field: str, values: Sequence[str], most: int, chars: int,
    pattern: re.Pattern[str] | None = None,
) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if len(values) > most:
        errors.append((field, f"at most {most} entries, got {len(values)}"))
    for index, value in enumerate(values[:most]):
        if not 1 <= len(value) <= chars:
            errors.append((f"{field}.{index}", f"1 to {chars} characters, got {len(value)}"))
        elif pattern is not None and not pattern.fullmatch(value):
            errors.append((f"{field}.{index}", f"{value!r} must be ASCII letters, digits and "
                           "'_', '.', ':', '/', '-', starting with a letter or digit"))
        elif value != value.strip() or not value.isprintable():
            errors.append((f"{field}.{index}", "no control characters or surrounding spaces"))
    return errors


def check_template_bounds(path: str, template: AgentTemplate, limits: ManifestLimits) -> None:
    errors = _names(path, "capabilities", template.capabilities, limits.capabilities,
                    limits.capability_chars)
    errors += _names(path, "tools", template.tools, limits.tools, limits.tool_chars, TOOL_NAME)
    if errors:
        raise ManifestError(path, errors)


def check_extends(paths: Sequence[str], templates: Sequence[AgentTemplate]) -> None:
    """Refuse duplicate template names, a template extending itself, and `extends` cycles
    among the package's own templates (parents outside the package are the resolver's)."""
    by_name: dict[str, tuple[str, AgentTemplate]] = {}
    for path, template in zip(paths, templates, strict=True):
        if template.name in by_name:
            first = by_name[template.name][0]
            raise ManifestError(path, [("name", f"{template.name!r} is also the name of {first}")])
        by_name[template.name] = (path, template)
    for path, template in zip(paths, templates, strict=True):
        if template.extends == template.name:
            raise ManifestError(path, [("extends", f"template {template.name!r} extends itself")])
        chain = [template.name]
        parent = template.extends
        while parent is not None and parent in by_name:
            if parent in chain:
                cycle = " -> ".join([*chain[chain.index(parent):], parent])
                raise ManifestError(path, [("extends", f"inheritance cycle: {cycle}")])
            chain.append(parent)
            parent = by_name[parent][1].extends


def check_package_contents(
    manifest: Manifest, files: Mapping[str, bytes], templates: Sequence[AgentTemplate],
    limits: ManifestLimits,
) -> None:
    for readme in READMES:
        if readme in files and len(files[readme]) > limits.readme_bytes:
            raise ManifestError(readme, [(
                "", f"the README is {len(files[readme])} bytes, over the "
                f"{limits.readme_bytes}-byte limit"
            )])
    for path, template in zip(manifest.templates, templates, strict=True):
        if len(files[path]) > limits.template_bytes:
            raise ManifestError(path, [(
                "", f"the template is {len(files[path])} bytes, over the "
                f"{limits.template_bytes}-byte limit"
            )])
        check_template_bounds(path, template, limits)
    check_extends(manifest.templates, templates)
