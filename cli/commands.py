"""The built-in commands of `agentfactory`, contributed through `agentfactory_cli_commands`.

This module is a plugin like any third-party one: it is listed in the `agentfactory` entry-point
group and answers the same hook, so the hook is exercised by every run of the CLI. Its commands
are `LazyCommand`s: the name and one-line help are known without importing the module behind
them, which keeps `agentfactory --help` and the client commands free of the server stack.

`collect_commands(pm)` builds the command table: built-ins first, then other plugins' commands;
a plugin command whose name a built-in already has is ignored with a warning, so no plugin can
replace `install` or `publish` behind the user's back.

One invocation builds one plugin manager (`invocation_plugin_manager`): the command table and the
command that runs (`run` hands it to its `AgentFactory`) share it, so entry points are scanned and
plugins registered once per process, not once for the table and again for the factory.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import click

from core.hookspecs import hookimpl

if TYPE_CHECKING:
    import pluggy

_PLUGIN_MANAGER = "agentfactory.plugin_manager"  # key of click's per-invocation `Context.meta`

# name -> (module:attribute, one-line help shown by --help without importing the module)
BUILTIN: dict[str, tuple[str, str]] = {
    "templates": ("cli.templates:templates", "List, show, validate templates; print schema."),
    "run": ("cli.run:run", "Run an agent on an input file and print the result as JSON."),
    "runs": ("cli.runs:runs", "List, show and cancel your runs on the marketplace."),
    "usage": ("cli.usage:usage", "Show the tokens and cost of model calls on this machine."),
    "sandbox": ("cli.sandbox:sandbox", "Build the sandbox runner or run a file inside it."),
    "vet": ("cli.sandbox:vet", "Run a package's examples in the sandbox and print the report."),
    "serve": ("cli.serve:serve", "Start the marketplace server."),
    "audit": ("cli.audit:audit", "Show the marketplace's audit trail for your token."),
    "admin": ("cli.admin:admin", "Operator commands on the server's database (admin token)."),
    "worker": ("cli.worker:worker", "Execute queued runs from the marketplace's PostgreSQL."),
    "keygen": ("cli.publish:keygen", "Create an Ed25519 signing key."),
    "register": ("cli.publish:register", "Register a publisher; save its token."),
    "init": ("cli.publish:init", "Scaffold a new agent package directory."),
    "build": ("cli.publish:build", "Build a deterministic package archive from a folder."),
    "publish": ("cli.publish:publish", "Sign and upload a package archive."),
    "yank": ("cli.publish:yank", "Yank a release with a reason."),
    "deprecate": ("cli.publish:deprecate", "Deprecate a release (still installs, warns)."),
    "revoke": ("cli.publish:revoke", "Revoke a release for good: it must not run anywhere."),
    "whoami": ("cli.account:whoami", "Show the account and scopes of your token."),
    "logout": ("cli.account:logout", "Revoke and forget the stored token."),
    "search": ("cli.market:search", "Search the marketplace."),
    "info": ("cli.market:info", "Show a package: versions, rating, signing key, vetting."),
    "install": ("cli.market:install", "Install a community agent (verified and vetted)."),
    "uninstall": ("cli.market:uninstall", "Remove an installed agent."),
    "list": ("cli.market:list_installed", "List installed agents."),
    "update": ("cli.upgrade:update", "Move installed agents to their newest release."),
    "outdated": ("cli.upgrade:outdated", "List installed agents with newer releases."),
    "bundle": ("cli.bundle:bundle", "Create or inspect signed offline bundles of agents."),
    "rate": ("cli.market:rate", "Rate a package 1-5 and optionally review it."),
    "reviews": ("cli.market:reviews", "List a package's reviews."),
    "log": ("cli.log:log", "Audit the registry's public release log (verify, dump)."),
}


class LazyCommand(click.Command):
    """A command known by name and help; `load()` imports the real one."""

    def __init__(self, name: str, target: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, help=short_help)
        self.target = target

    def load(self) -> click.Command:
        module_name, _, attr = self.target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@hookimpl
def agentfactory_cli_commands() -> Sequence[click.Command]:
    return [LazyCommand(name, target, text) for name, (target, text) in BUILTIN.items()]


def invocation_plugin_manager(ctx: click.Context | None = None) -> pluggy.PluginManager:
    """The plugin manager of the current command-line invocation, built on first use.

    Outside a click invocation (a command called as a plain function) a fresh one is built.
    The entry points come from the disk cache of `core.entrypoints`, which reads them again
    whenever a distribution was installed, removed or changed.
    """
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return _plugin_manager()
    pm: pluggy.PluginManager | None = ctx.meta.get(_PLUGIN_MANAGER)
    if pm is None:
        pm = ctx.meta[_PLUGIN_MANAGER] = _plugin_manager()
    return pm


def _plugin_manager() -> pluggy.PluginManager:
    from core.entrypoints import cached_entry_points
    from core.paths import cache_home
    from core.plugins import ENTRY_POINT_GROUP, load_entry_point_plugins, make_plugin_manager

    pm = make_plugin_manager(load_entry_points=False)
    load_entry_point_plugins(pm, cached_entry_points(ENTRY_POINT_GROUP, cache_home() / "plugins"))
    return pm


def collect_commands(pm: pluggy.PluginManager) -> dict[str, click.Command]:
    """Every command the plugins of `pm` contribute, by name (built-ins win a clash)."""
    this = sys.modules[__name__]
    impls = pm.hook.agentfactory_cli_commands.get_hookimpls()
    impls.sort(key=lambda impl: impl.plugin is not this)  # stable: built-ins first
    commands: dict[str, click.Command] = {}
    for impl in impls:
        contributed = cast("Sequence[object]", impl.function())
        for command in contributed:
            if not isinstance(command, click.Command) or not command.name:
                _warn(f"plugin {impl.plugin_name!r} contributed {command!r}, "
                      "which is not a named click command; ignored")
            elif command.name in commands:
                _warn(f"plugin {impl.plugin_name!r} contributes a command {command.name!r}, "
                      "which already exists; ignored")
            else:
                commands[command.name] = command
    return commands


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)
