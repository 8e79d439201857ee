"""Building the pluggy `PluginManager` of Agent Factory.

There is no module-level manager: every factory (and every test) builds its own with
`make_plugin_manager()`. Built-in plugins are listed in the `agentfactory` entry-point group of
pyproject.toml and loaded through exactly the path an installed third-party plugin takes.
Entry points are loaded one at a time so a plugin that fails to import is named in the error.

Hooks whose answers must be traced back to a plugin (package vetoes, contributed routers and
commands) are called through `answers()`, one plugin at a time, so every refusal or bad answer
names the plugin it came from. A plugin that crashes while vetting a package refuses it: a
validator that cannot decide must not let a package through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from core import hookspecs
from core.errors import (
    AgentFactoryError,
    BadContribution,
    PackageVetoed,
    PluginError,
    PluginLoadError,
)

if TYPE_CHECKING:
    from core.config import FactorySettings
    from core.entrypoints import EntryPointLike

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


def load_entry_point_plugins(
    pm: pluggy.PluginManager, entries: Iterable[EntryPointLike] | None = None
) -> list[str]:
    """Import and register each plugin of the entry-point group; return their names.

    `entries` are the group's entry points when the caller has them already (the command line
    keeps them in a cache, `core.entrypoints`); by default they are read from the installed
    distributions."""
    if entries is None:
        from importlib.metadata import entry_points  # an import that costs a CLI run ~30 ms

        entries = entry_points(group=ENTRY_POINT_GROUP)
    loaded = []
    for ep in sorted(entries, key=lambda e: e.name):
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


def answers(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """`(plugin name, answer)` of each implementation of `hook`, in pluggy's call order.

    Like `pm.hook.<hook>(**kwargs)` without wrappers, but each answer keeps its plugin's name.
    """
    return [(impl.plugin_name, _call(impl, kwargs)) for impl in _impls(pm, hook)]


def _impls(pm: pluggy.PluginManager, hook: str) -> list[pluggy.HookImpl]:
    impls = getattr(pm.hook, hook).get_hookimpls()
    # pluggy calls the last registered first
    return [impl for impl in reversed(impls) if not (impl.hookwrapper or impl.wrapper)]


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    # An implementation may accept only some of the spec's arguments, as with pluggy itself.
    return impl.function(*(kwargs[arg] for arg in impl.argnames))


class PackageManifest(Protocol):
    """What the package hooks need to name a package (`registry.manifest.Manifest` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


VALIDATE_PACKAGE = "agentfactory_validate_package"


def package_vetoes(
    pm: pluggy.PluginManager, manifest: PackageManifest, settings: FactorySettings
) -> dict[str, list[str]]:
    """Each refusing plugin's reasons to refuse `manifest` (empty when every plugin accepts)."""
    vetoes: dict[str, list[str]] = {}
    kwargs = {"manifest": manifest, "settings": settings}
    for impl in _impls(pm, VALIDATE_PACKAGE):
        try:
            reasons = _call(impl, kwargs)
        except AgentFactoryError:
            raise
        except Exception as exc:  # someone else's code failed: refuse, naming it
            reasons = [f"the validator failed ({type(exc).__name__}: {exc})"]
        if reasons is None:  # as in any pluggy call, no answer is no objection
            continue
        if isinstance(reasons, str) or not isinstance(reasons, Iterable):
            raise BadContribution(impl.plugin_name, VALIDATE_PACKAGE, reasons, "a list of reasons")
        listed = [str(reason) for reason in reasons if str(reason)]
        if listed:
            vetoes[impl.plugin_name] = listed
    return vetoes


def package_check(
    pm: pluggy.PluginManager, settings: FactorySettings
) -> Callable[[PackageManifest], None]:
    """A check that raises `PackageVetoed` when any plugin of `pm` refuses a manifest.

    This is what the registry (at publish) and the installer (before unpacking) are given: they
    call it without knowing about plugins.
    """

    def check(manifest: PackageManifest) -> None:
        vetoes = package_vetoes(pm, manifest, settings)
        if vetoes:
            raise PackageVetoed(manifest.name, manifest.version, vetoes)

    return check
