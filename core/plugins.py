"""Building the pluggy `PluginManager` of Agent Factory.

There is no module-level manager: every factory (and every test) builds its own with
`make_plugin_manager()`. Built-in plugins are listed in the `agentfactory` entry-point group of
pyproject.toml and loaded through exactly the path an installed third-party plugin takes.
Entry points are loaded one at a time so a plugin that fails to import is named in the error.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points

import pluggy

from core import hookspecs
from core.errors import PluginError, PluginLoadError

ENTRY_POINT_GROUP = hookspecs.PROJECT


def make_plugin_manager(
    *, load_entry_points: bool = True, plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A fresh manager with every hook spec, the entry-point plugins and then `plugins`."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        load_entry_point_plugins(pm)
    for plugin in plugins:
        register(pm, plugin)
    return pm


def load_entry_point_plugins(pm: pluggy.PluginManager) -> list[str]:
    """Import and register each plugin of the entry-point group; return their names."""
    loaded = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import-time failure of someone else's code
            raise PluginLoadError(ep.name, ep.value, f"{type(exc).__name__}: {exc}") from exc
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginLoadError(ep.name, ep.value, str(exc)) from exc
        loaded.append(ep.name)
    return loaded


def register(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> str:
    """Register `plugin`, turning pluggy's errors into `PluginError`; return its name."""
    try:
        registered = pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from exc
    if registered is None:
        raise PluginError(f"plugin {name!r} is blocked")
    return registered


def implementations(pm: pluggy.PluginManager) -> frozenset[str]:
    """Every implementation name the registered plugins provide."""
    names: set[str] = set()
    for answer in pm.hook.agentfactory_implementations():
        names.update(answer)
    return frozenset(names)
