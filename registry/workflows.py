"""Publish-time check of a package's workflow templates: the rules of load time, at the door.

A workflow template is refused at publish, as it would be when loaded (`core.inheritance`), if a
step names an agent nobody provides, asks for a version the provider does not have, or if
workflows lead back to themselves. At publish the providers are: the package's own templates,
the factory's built-in templates, and the packages the manifest `requires` (a step naming a
required package is accepted at any version: the registry resolves that version at install).
The shape of each workflow (unknown steps, cycles, bounds) was checked when its template was
parsed. A refusal is a `ManifestError` naming the template file and the step.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from core.errors import AgentFactoryError
from core.template import AgentTemplate
from core.workflow import Workflow, agent_problems
from registry.errors import ManifestError
from registry.manifest import Manifest
from registry.names import normalize_name

Record = tuple[str | None, Workflow | None]


@functools.cache
def builtin_agents() -> dict[str, Record]:
    """Name -> (version, workflow) of each template shipped in the factory's `templates/`."""
    from core.loader import load_template_file, template_files
    from core.paths import builtin_templates_dir

    agents: dict[str, Record] = {}
    for path in template_files(builtin_templates_dir()):
        try:
            template = load_template_file(path)
        except AgentFactoryError:  # a broken built-in is the factory's problem, not this package's
            continue
        agents[template.name] = (template.version, template.workflow)
    return agents


def check_workflows(
    manifest: Manifest, paths: Sequence[str], templates: Sequence[AgentTemplate]
) -> None:
    """Refuse the first workflow template of the package whose steps name an agent that is not
    provided (see the module doc)."""
    own: dict[str, Record] = {t.name: (t.version, t.workflow) for t in templates}
    required = {normalize_name(name) for name in manifest.requires}

    def known(agent: str) -> Record | None:
        found = own.get(agent) or builtin_agents().get(agent)
        if found is not None:
            return found
        try:
            return (None, None) if normalize_name(agent) in required else None
        except AgentFactoryError:
            return None

    for path, template in zip(paths, templates, strict=True):
        if template.workflow is not None:
            problems = agent_problems(template.workflow, known, template.name)
            if problems:
                raise ManifestError(path, problems)


def is_template_only(templates: Sequence[Any]) -> bool:
    """True when every template is a workflow: such a package needs no code of its own."""
    return bool(templates) and all(t.workflow is not None for t in templates)
