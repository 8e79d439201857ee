"""The `agentfactory` command line.

Subcommands are imported only when they run: `agentfactory --help` and the client commands must
never import the server stack (FastAPI, SQLModel), which alone takes about a second to import.
Every deliberate error (`AgentFactoryError`) becomes one red line on stderr and exit code 1.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> (module:attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "templates": ("core.cli_templates:templates", "List, show, validate templates; print schema."),
    "run": ("core.cli_run:run", "Run an agent on an input file and print the result as JSON."),
    "sandbox": ("sandbox.cli:sandbox", "Build the sandbox runner or run a file inside it."),
    "vet": ("sandbox.cli:vet", "Run a package's examples in the sandbox and print the report."),
    "serve": ("marketplace.cli_server:serve", "Start the marketplace server."),
    "keygen": ("marketplace.cli:keygen", "Create an Ed25519 signing key."),
    "register": ("marketplace.cli:register", "Register a publisher; save its token."),
    "init": ("marketplace.cli:init", "Scaffold a new agent package directory."),
    "build": ("marketplace.cli:build", "Build a deterministic package archive from a folder."),
    "publish": ("marketplace.cli:publish", "Sign and upload a package archive."),
    "search": ("marketplace.cli:search", "Search the marketplace."),
    "info": ("marketplace.cli:info", "Show a package: versions, rating, signature, vetting."),
    "install": ("marketplace.cli:install", "Install a community agent (verified and vetted)."),
    "uninstall": ("marketplace.cli:uninstall", "Remove an installed agent."),
    "list": ("marketplace.cli:list_installed", "List installed agents."),
    "rate": ("marketplace.cli:rate", "Rate a package 1-5 and optionally review it."),
    "reviews": ("marketplace.cli:reviews", "List a package's reviews."),
    "yank": ("marketplace.cli:yank", "Yank a release with a reason."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target[0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # the subsystem is not part of this build yet
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentfactory")
    except PackageNotFoundError:
        return "0+unknown"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="agentfactory")
def cli() -> None:
    """Agent Factory: build agents from JSON templates, share them as signed packages, and run
    strangers' agents inside a WebAssembly sandbox."""


def fail(message: str) -> None:
    """Print one red error line on stderr."""
    click.secho(f"error: {message}", fg="red", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs the CLI and turns errors into one line and an exit code."""
    from core.errors import AgentFactoryError

    try:
        return cli.main(args=argv, prog_name="agentfactory", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AgentFactoryError as exc:
        fail(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        fail("interrupted")
        sys.exit(130)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        sys.exit(1)
    except Exception as exc:  # last line of defence: a user never sees a traceback
        if os.environ.get("AGENTFACTORY_DEBUG"):
            raise
        fail(f"internal error ({type(exc).__name__}): {exc} (set AGENTFACTORY_DEBUG=1 for details)")
        sys.exit(2)


if __name__ == "__main__":
    main()
