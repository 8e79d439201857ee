"""`agentfactory sandbox build|run` and `agentfactory vet`.

Failures are raised as `sandbox.errors` errors (one red line, exit 1, printed by `cli.main`);
build progress goes to stderr (live on a terminal, see `cli.output.build_steps`) so stdout stays
pure JSON for scripts. A bad `--input` is the user's mistake, reported as `InvalidTaskInput`
with the JSON error's position, never blamed on the agent's source.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.output import build_steps, plural, print_result_json
from core.errors import AgentInputError
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from sandbox.limits import SandboxLimits
    from sandbox.runtime import Sandbox


class InvalidTaskInput(AgentInputError):
    """`--input` (`source`: the option, or `@FILE`) is not a JSON object or list of objects.

    `position` says where JSON parsing failed ("line 1, column 2"), empty when the JSON parsed
    but has the wrong shape.
    """

    def __init__(self, source: str, reason: str, position: str = "") -> None:
        self.source = source
        self.reason = reason
        self.position = position
        if position:
            super().__init__(f"{source} is not valid JSON ({position}): {reason}")
        else:
            super().__init__(f"{source}: {reason}")


def ready_sandbox(limits: SandboxLimits | None = None) -> Sandbox:
    """A sandbox whose runner is built, showing the build's progress if it has to happen."""
    from sandbox.runtime import Sandbox

    with build_steps() as step:
        box = Sandbox(limits, progress=step)
        box.ensure_ready()
    return box


@click.group()
def sandbox() -> None:
    """Build the sandbox runner or run a Python file inside it."""


@sandbox.command()
@click.option("--force", is_flag=True, help="Rebuild even if a cached runner exists.")
def build(force: bool) -> None:
    """Build, compile and cache the runner component (also happens on first use)."""
    from sandbox import build as builder

    started = time.perf_counter()
    engine = builder.make_engine()
    with build_steps() as step:
        builder.load_or_build(engine, step, force=force)
    removed = builder.clear_stale()
    elapsed = time.perf_counter() - started
    click.echo(f"runner ready: {builder.artifact_path()} ({elapsed:.2f} s)")
    if removed:
        click.echo(f"removed {plural(len(removed), 'stale runner')}")


def _parse_input(text: str) -> list[dict[str, Any]]:
    source = "--input"
    if text.startswith("@"):
        source = f"--input {text}"
        text = Path(text[1:]).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno}, column {exc.colno}"
        raise InvalidTaskInput(source, exc.msg.lower(), position) from None
    tasks = data if isinstance(data, list) else [data]
    if not tasks or not all(isinstance(task, dict) for task in tasks):
        raise InvalidTaskInput(source, "expected a JSON object or a list of objects")
    return tasks


@sandbox.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--input", "input_", default="{}", show_default=True,
              help="The task as JSON (an object, or a list of objects); @FILE reads a file.")
@click.option("--entry", default="process", show_default=True, help="Function to call.")
@click.option("--fuel", type=int, default=None, help="Fuel budget per task.")
@click.option("--memory-mb", type=int, default=None, help="Memory cap in MiB.")
@click.option("--timeout-s", type=float, default=None, help="Wall-clock deadline per task.")
@click.option("--reuse", is_flag=True, help="Run all tasks in one instance (faster, shares state).")
def run(
    file: Path,
    input_: str,
    entry: str,
    fuel: int | None,
    memory_mb: int | None,
    timeout_s: float | None,
    reuse: bool,
) -> None:
    """Run FILE's process(task) in the sandbox and print the result as JSON."""
    from dataclasses import replace

    from sandbox.limits import SandboxLimits
    from sandbox.results import AgentSource

    tasks = _parse_input(input_)
    limits = SandboxLimits()
    if fuel is not None:
        limits = replace(limits, fuel=fuel)
    if memory_mb is not None:
        limits = replace(limits, memory_bytes=memory_mb * 1024 * 1024)
    if timeout_s is not None:
        limits = replace(limits, timeout_s=timeout_s)
    source = AgentSource({file.name: file.read_text(encoding="utf-8")}, f"{file.name}:{entry}")
    results = ready_sandbox(limits).run(source, tasks, reuse_instance=reuse)
    values = []
    for result in results:
        if result.stdout:
            click.echo(result.stdout, err=True, nl=False)
        if not result.ok and result.traceback:
            click.echo(result.traceback.rstrip(), err=True)
        values.append(result.raise_for_status(file.name))
    output = values if len(tasks) > 1 or input_.lstrip().startswith("[") else values[0]
    print_result_json(output)


@click.command()
@click.argument("package_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def vet(package_file: Path, as_json: bool) -> None:
    """Run PACKAGE_FILE's examples in the sandbox and print the vetting report."""
    from registry.archive import read_archive
    from sandbox.vetting import VettingStatus
    from sandbox.vetting import vet as vet_package

    package = read_archive(package_file.read_bytes())
    report = vet_package(package, ready_sandbox())
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        colour = {"passed": "green", "failed": "red", "unvetted": "yellow"}[report.status.value]
        click.secho(f"{report.package} {report.version}: {report.status.value}", fg=colour)
        for example in report.examples:
            mark = "ok  " if example.passed else "FAIL"
            peak = example.memory_peak_bytes or 0
            click.echo(
                f"  {mark} {example.name}  {example.duration_ms:.1f} ms  "
                f"fuel {example.fuel_used:,}  peak heap {peak / 1024:.0f} KiB"
            )
            for failure in example.failures:
                click.echo(f"       {failure}")
        if report.status is VettingStatus.UNVETTED:
            click.echo("  the package declares no examples: nothing was checked")
    if report.status is VettingStatus.FAILED:
        raise SandboxError(f"{report.package} {report.version} failed vetting")
