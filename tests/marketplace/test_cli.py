"""The marketplace commands that work offline, and the CLI's import budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.marketplace.cli_runner import run_cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"AGENTFACTORY_HOME": str(tmp_path / "home"), "AGENTFACTORY_URL": "http://127.0.0.1:9",
            "AGENTFACTORY_TOKEN": ""}


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(env: dict[str, str]) -> None:
    first = run_cli(env, "keygen", "--json").ok().json()
    path = Path(first["path"])
    assert path.stat().st_mode & 0o777 == 0o600 and len(first["key_id"]) == 32
    refused = run_cli(env, "keygen").failed()
    assert "already exists" in refused.err and "--force" in refused.err
    assert path.read_bytes() and run_cli(env, "keygen", "--force", "--json").ok().json()[
        "key_id"] != first["key_id"]


def test_init_then_build_is_deterministic_and_valid(env: dict[str, str], tmp_path: Path) -> None:
    pkg = tmp_path / "counter"
    made = run_cli(env, "init", str(pkg), "--name", "acme/counter", "--json").ok().json()
    assert {Path(p).name for p in made["files"]} == {"agent.json", "counter.json", "process.py",
                                                      "README.md"}
    one = run_cli(env, "build", str(pkg), "--json").ok().json()
    two = run_cli(env, "build", str(pkg), "--out", str(tmp_path / "b.zip"), "--json").ok().json()
    assert one["digest"] == two["digest"]  # the .dist output is not packaged into the next build
    assert (tmp_path / "b.zip").read_bytes() == Path(one["path"]).read_bytes()
    manifest = json.loads((pkg / "agent.json").read_text())
    assert manifest["name"] == "acme/counter" and len(manifest["examples"]) == 2


def test_init_refuses_a_non_empty_directory_and_a_bad_name(env: dict[str, str],
                                                           tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert "not empty" in run_cli(env, "init", str(busy), "--name", "acme/x").failed().err
    assert (busy / "keep.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1
    bad = run_cli(env, "init", str(tmp_path / "new"), "--name", "no-namespace").failed()
    assert "expected 'namespace/name'" in bad.err


def test_build_reports_an_invalid_manifest_in_one_line(env: dict[str, str],
                                                       tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    run_cli(env, "init", str(pkg), "--name", "acme/pkg").ok()
    manifest = json.loads((pkg / "agent.json").read_text())
    manifest["version"] = "not a version"
    (pkg / "agent.json").write_text(json.dumps(manifest))
    assert "invalid version 'not a version'" in run_cli(env, "build", str(pkg)).failed().err


def test_publish_without_a_key_says_run_keygen(env: dict[str, str], tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    run_cli(env, "init", str(pkg), "--name", "acme/pkg").ok()
    assert "run `agentfactory keygen` first" in run_cli(env, "publish", str(pkg)).failed().err


def test_local_install_state_commands(env: dict[str, str]) -> None:
    assert run_cli(env, "list", "--json").ok().json() == []
    assert run_cli(env, "list").ok().out.strip() == "no agents installed"
    assert "acme/x is not installed" in run_cli(env, "uninstall", "acme/x").failed().err
    assert "--reason is required" in run_cli(env, "yank", "acme/x", "1.0").err
    assert "give a requirement" in run_cli(env, "install").err


def test_client_commands_never_import_the_server_stack() -> None:
    code = (
        "import sys, cli.main, cli.market, cli.publish\n"
        "import marketplace.client.installer, marketplace.client.installed\n"
        "from cli.main import cli\n"
        "for name in ('search', 'install', 'publish', 'rate'): cli.get_command(None, name)\n"
        "bad = [m for m in ('fastapi', 'sqlmodel', 'uvicorn', 'sqlalchemy', 'registry.service')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
