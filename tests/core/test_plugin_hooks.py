"""Extension hooks, proved with a third-party plugin installed through a real entry point.

The command-line tests run `agentfactory` as a process with the plugin's distribution on
PYTHONPATH, exactly what a user gets after `pip install` of a plugin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import FactorySettings
from core.errors import BadContribution, PackageVetoed
from core.plugins import make_plugin_manager, package_check, package_vetoes
from registry.manifest import parse_manifest
from tests.plugin_dist import install_plugin, plugin_env, write_plugin

CLI_PLUGIN = '''
import click

@click.command()
@click.argument("who", default="world")
def greet(who):
    """Greet someone, from a third-party plugin."""
    click.echo(f"hello, {who}")

@click.command(name="install")
def hijack():
    """Not the real install."""
    click.echo("hijacked")

@hookimpl
def agentfactory_cli_commands():
    return [greet, hijack]
'''


def agentfactory(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", *args],
        env=plugin_env(site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cli_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_plugin(tmp_path_factory.mktemp("site"), "tp_cli_plugin", CLI_PLUGIN)


def test_a_plugin_command_is_listed_in_help_and_runs(cli_site: Path) -> None:
    listed = agentfactory(cli_site, "--help")
    assert listed.returncode == 0, listed.stderr
    assert "greet" in listed.stdout
    assert "Greet someone, from a third-party plugin." in listed.stdout

    ran = agentfactory(cli_site, "greet", "ada")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hello, ada\n"


def test_a_plugin_cannot_replace_a_builtin_command(cli_site: Path) -> None:
    result = agentfactory(cli_site, "install", "--help")
    assert result.returncode == 0, result.stderr
    assert "hijacked" not in result.stdout
    assert "Usage: agentfactory install [OPTIONS] [REQUIREMENT]" in result.stdout
    assert (
        "warning: plugin 'tp_cli_plugin' contributes a command 'install', which already "
        "exists; ignored"
    ) in result.stderr


MANIFEST = {
    "name": "acme/summarizer",
    "version": "1.0.0",
    "summary": "Summarizes text",
    "license": "MIT",
    "templates": ["templates/summarizer.json"],
}


def test_package_vetoes_name_each_refusing_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_veto_names", '''
    @hookimpl
    def agentfactory_validate_package(manifest):
        if manifest.name.startswith("acme/"):
            return ["acme is banned here", "and so is this version"]
        return []
    ''')
    install_plugin(monkeypatch, tmp_path / "site2", "tp_veto_crash", '''
    @hookimpl
    def agentfactory_validate_package(manifest, settings):
        raise KeyError("oops")
    ''')
    pm = make_plugin_manager()
    manifest = parse_manifest(MANIFEST)

    vetoes = package_vetoes(pm, manifest, FactorySettings())

    assert vetoes == {
        "tp_veto_names": ["acme is banned here", "and so is this version"],
        "tp_veto_crash": ["the validator failed (KeyError: 'oops')"],
    }
    with pytest.raises(PackageVetoed) as refused:
        package_check(pm, FactorySettings())(manifest)
    assert str(refused.value).startswith(
        "acme/summarizer 1.0.0 refused by plugin 'tp_veto_names': acme is banned here; "
        "and so is this version, plugin 'tp_veto_crash': the validator failed"
    )


def test_a_validator_that_answers_a_string_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_veto_string", '''
    @hookimpl
    def agentfactory_validate_package(manifest, settings):
        return "no"
    ''')
    with pytest.raises(BadContribution, match="plugin 'tp_veto_string' answered "
                       "agentfactory_validate_package with 'no', which is not a list"):
        package_vetoes(make_plugin_manager(), parse_manifest(MANIFEST), FactorySettings())


def test_the_built_in_plugins_accept_a_plain_package() -> None:
    assert package_vetoes(make_plugin_manager(), parse_manifest(MANIFEST), FactorySettings()) == {}
