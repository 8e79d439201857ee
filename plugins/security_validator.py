"""The built-in template validator: refuses templates that ask for denied tools.

A template whose `tools` include an entry of `core.security.DENIED_TOOLS` (shell, unrestricted
network or filesystem access) is vetoed unless the operator lists that tool in
`FactorySettings.allowed_tools`. Other plugins can veto templates the same way by implementing
`agentfactory_validate_template`; the manager refuses a template if any validator objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.hookspecs import hookimpl
from core.security import denied_tools

if TYPE_CHECKING:
    from core.config import FactorySettings
    from core.resolved import ResolvedTemplate


@hookimpl
def agentfactory_validate_template(
    template: ResolvedTemplate, settings: FactorySettings
) -> Sequence[str]:
    return [
        f"tool {tool!r} is on the deny-list (an operator may allow it in allowed_tools)"
        for tool in denied_tools(template.tools, settings.allowed_tools)
    ]
