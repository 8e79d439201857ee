"""A third-party plugin installed the way pip installs one: a module next to a `.dist-info`.

`write_plugin(site, module, source)` writes `site/<module>.py` and
`site/<module>-1.0.dist-info/` holding `METADATA` and an `entry_points.txt` that declares the
module in the `agentfactory` entry-point group. With `site` on `sys.path`
(`install_plugin`, through `monkeypatch.syspath_prepend`) or on `PYTHONPATH` (for a subprocess,
`plugin_env`), `importlib.metadata` finds a real distribution and `make_plugin_manager()` loads
the plugin through the same path as any installed one: no registration shortcut.

Imported modules stay in `sys.modules` after a test, so give each test's plugin its own module
name.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from core.plugins import ENTRY_POINT_GROUP

# The hook marker a third-party plugin uses; it imports nothing else of the project.
PLUGIN_HEADER = 'import pluggy\n\nhookimpl = pluggy.HookimplMarker("agentfactory")\n'


def write_plugin(site: Path, module: str, source: str, version: str = "1.0") -> Path:
    """Write the module and its distribution metadata under `site`; return `site`."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(PLUGIN_HEADER + textwrap.dedent(source), encoding="utf-8")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{module} = {module}\n", encoding="utf-8"
    )
    return site


def install_plugin(
    monkeypatch: pytest.MonkeyPatch, site: Path, module: str, source: str
) -> Path:
    """`write_plugin`, then put `site` on `sys.path` for the rest of the test."""
    write_plugin(site, module, source)
    monkeypatch.syspath_prepend(str(site))
    return site


def plugin_env(site: Path) -> dict[str, str]:
    """The environment of a subprocess that sees the plugins under `site`."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
