"""The marketplace commands that work offline, what they print for people, and the CLI's
import budget. One live server (`live_server`) checks the human output of the read commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from marketplace.client.lockfile import LockEntry, Lockfile, VettingSummary, write_lock
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


# -- what people see ---------------------------------------------------------------------------
def lock_entry(name: str, examples: int, *, requested: bool = True) -> LockEntry:
    return LockEntry(name=name, version="1.2.0", digest="ab" * 32, size=100, key_id="k" * 32,
                     public_key="", publisher=name.split("/")[0], requested=requested,
                     vetting=VettingSummary(passed=True, status="passed", examples=examples))


def test_list_prints_a_table_with_whole_names_and_no_ansi_codes(env: dict[str, str]) -> None:
    long_name = "acme/" + "a-very-long-agent-name-" * 4 + "end"
    write_lock(Path(env["AGENTFACTORY_HOME"]), Lockfile(agents={
        long_name: lock_entry(long_name, 1), "acme/dep": lock_entry("acme/dep", 3,
                                                                   requested=False)}))
    shown = run_cli(env, "list").ok().out
    assert "\x1b[" not in shown
    header, *rows = [line for line in shown.splitlines() if line.strip(" ─")]
    assert header.split() == ["NAME", "VERSION", "SHA256", "KEY", "VETTING", "STATUS"]
    assert rows[0].startswith(long_name + " ") and "vetted (1 example)" in rows[0]
    assert rows[1].split()[:2] == ["acme/dep", "1.2.0"]
    assert "vetted (3 examples)" in rows[1] and rows[1].rstrip().endswith("dependency")
    assert run_cli(env, "list").out == shown  # deterministic
    assert [e["name"] for e in run_cli(env, "list", "--json").ok().json()] == [
        long_name, "acme/dep"]


def test_unreachable_marketplace_says_how_to_start_one(env: dict[str, str]) -> None:
    down = run_cli(env, "search", "x").failed()
    assert down.err.startswith("error: cannot reach the marketplace at http://127.0.0.1:9: ")
    assert "`agentfactory serve`" in down.err and "--url or AGENTFACTORY_URL" in down.err


@pytest.mark.parametrize(("stars", "says"), [
    ("6", "stars must be 1 to 5, not 6"), ("0", "stars must be 1 to 5, not 0"),
    ("five", "stars must be a whole number from 1 to 5, not 'five'")])
def test_rate_refuses_stars_out_of_range_before_sending(env: dict[str, str], stars: str,
                                                        says: str) -> None:
    # The URL is the discard port: reaching the network would fail with "cannot reach".
    refused = run_cli({**env, "AGENTFACTORY_TOKEN": "t"}, "rate", "acme/x", stars).failed()
    assert says in refused.err and "rate --help" in refused.err and refused.code == 2


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_serve_on_a_busy_port_fails_first_and_suggests_another(
        env: dict[str, str], busy_port: int) -> None:
    refused = run_cli(env, "serve", "--port", str(busy_port)).failed()
    assert refused.out == ""  # no banner, no sandbox build: the port is checked first
    assert refused.err.strip() == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: the port is already in use; "
        f"choose another port with --port (e.g. --port {busy_port + 1})")
    assert not (Path(env["AGENTFACTORY_HOME"]) / "registry.db").exists()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server with its built-in agents published (signed, vetted) for the read commands."""
    from tests.marketplace.conftest import start_server, stop_server

    home = tmp_path_factory.mktemp("server") / "home"
    home.mkdir()
    server, proc = start_server(home)
    yield server
    stop_server(proc)


@pytest.fixture
def reader(shared_server: Any, tmp_path: Path) -> dict[str, str]:
    return {"AGENTFACTORY_HOME": str(tmp_path / "reader"), "AGENTFACTORY_URL": str(shared_server),
            "AGENTFACTORY_TOKEN": ""}


@pytest.mark.e2e
@pytest.mark.sandbox
def test_search_prints_a_table_and_json_stays_json(reader: dict[str, str]) -> None:
    found = run_cli(reader, "search", "--json").ok()
    names = [item["name"] for item in found.json()["items"]]
    assert found.out == json.dumps(found.json(), indent=2, sort_keys=True) + "\n"
    shown = run_cli(reader, "search").ok().out
    assert "\x1b[" not in shown
    assert shown.splitlines()[0].split() == ["NAME", "VERSION", "RATING", "DOWNLOADS", "SUMMARY"]
    for name in names:
        assert any(line.startswith(name + " ") for line in shown.splitlines())
    assert shown.rstrip().endswith(f"page 1 · {len(names)} of {len(names)} packages")
    one = run_cli(reader, "search", "--per-page", "1").ok().out
    assert one.rstrip().endswith(f"page 1 · 1 of {len(names)} packages")


@pytest.mark.e2e
@pytest.mark.sandbox
def test_info_shows_signing_key_signature_and_vetting(reader: dict[str, str]) -> None:
    name = run_cli(reader, "search", "--json").ok().json()["items"][0]["name"]
    data = run_cli(reader, "info", name, "--json").ok().json()
    [release] = data["versions"]
    shown = run_cli(reader, "info", name).ok().out
    assert "\x1b[" not in shown
    assert f"signing key   {release['key_id']} (active)" in shown
    row = next(line for line in shown.splitlines() if line.startswith(release["version"] + " "))
    assert release["key_id"][:12] in row and " verified " in row
    assert row.rstrip().endswith(" passed (1/1 example)") and release["digest"][:16] in row
    assert "rating        no verified ratings yet" in shown
    assert f"install: agentfactory install {name}" in shown


@pytest.mark.e2e
@pytest.mark.sandbox
def test_a_server_validation_answer_is_shown_in_the_users_terms(reader: dict[str, str]) -> None:
    run_cli(reader, "register", "rita").ok()
    name = run_cli(reader, "search", "--json").ok().json()["items"][0]["name"]
    refused = run_cli(reader, "rate", name, "5", "--title", "t" * 300).failed()
    assert refused.err.startswith("error: title: ") and "(HTTP 422)" in refused.err
    assert "body." not in refused.err and "RequestValidationError" not in refused.err
    # A download with rita's token makes her rating of that version count.
    import httpx

    version = run_cli(reader, "info", name, "--json").ok().json()["versions"][0]["version"]
    token = json.loads((Path(reader["AGENTFACTORY_HOME"]) / "config.json").read_text())["token"]
    httpx.get(f"{reader['AGENTFACTORY_URL']}/api/v1/packages/{name}/versions/{version}/download",
              headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    run_cli(reader, "rate", name, "4").ok()
    assert "(1 verified rating, all versions)" in run_cli(reader, "info", name).ok().out


@pytest.mark.e2e
@pytest.mark.sandbox
def test_strangers_text_is_printed_verbatim(reader: dict[str, str], tmp_path: Path) -> None:
    """A summary that looks like rich markup or an emoji code is data, not formatting."""
    summary = "[/oops] [bold]not bold[/bold] :smile: [link=http://x]y"
    run_cli(reader, "keygen").ok()
    run_cli(reader, "register", "mallory").ok()
    run_cli(reader, "init", str(tmp_path / "odd"), "--name", "mallory/odd",
            "--summary", summary).ok()
    run_cli(reader, "publish", str(tmp_path / "odd")).ok()
    assert f"  {summary}\n" in run_cli(reader, "info", "mallory/odd").ok().out
    assert summary in run_cli(reader, "search", "odd").ok().out
