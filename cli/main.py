"""The `agentfactory` command line.

Subcommands are imported only when they run: `agentfactory --help` and the client commands must
never import the server stack (FastAPI, SQLModel), which alone takes about a second to import.
Every deliberate error (`AgentFactoryError`) becomes one red line on stderr and exit code 1.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click


class LazyGroup(click.Group):
    """The top-level group: every subcommand comes from the `agentfactory_cli_commands` hook.

    The built-in commands are contributed by `cli.commands`, a plugin registered through the
    `agentfactory` entry-point group exactly like a third-party one. The plugins are loaded once
    per process, on the first lookup; a built-in command is imported only when it runs.
    """

    _commands: dict[str, click.Command] | None = None

    def _contributed(self, ctx: click.Context) -> dict[str, click.Command]:
        if self._commands is None:
            from cli.commands import collect_commands, invocation_plugin_manager

            self._commands = collect_commands(invocation_plugin_manager(ctx))
        return self._commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self._contributed(ctx)) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        command = self._contributed(ctx).get(cmd_name)
        if command is None:
            return None
        from cli.commands import LazyCommand

        return command.load() if isinstance(command, LazyCommand) else command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = self._contributed(ctx)
        rows = [(name, commands[name].get_short_help_str(limit=80)) for name in sorted(commands)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if args and self.get_command(ctx, name) is None and not name.startswith("-"):
            from core.errors import did_you_mean

            hint = did_you_mean(name, self.list_commands(ctx))
            raise click.UsageError(f"no such command {name!r}{hint}", ctx)
        return super().resolve_command(ctx, args)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentfactory")
    except PackageNotFoundError:
        return "0+unknown"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    # Looked up only when asked for: reading the distribution's metadata on every start-up
    # would cost each command several milliseconds for a line it does not print.
    if value and not ctx.resilient_parsing:
        click.echo(f"agentfactory, version {_version()}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
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
    except click.UsageError as exc:  # one red line too, pointing at the command's help
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(exc.format_message() + hint)
        sys.exit(exc.exit_code)
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
