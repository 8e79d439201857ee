"""Permission and capability diff on upgrade.

Unit: `asks_of` reads what a verified package asks for, `diff` says what an upgrade adds.
End to end, through a real `agentfactory serve` and the CLI: an upgrade asking for more is
shown and refused, then accepted with --accept; one asking for less updates silently through
`update`; `outdated` says what each newer release would add (table and --json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketplace.client.asks import Asks, asks_of, diff, needs_of
from marketplace.client.lockfile import read_lock
from marketplace.client.scaffold import set_version
from registry.archive import build_archive, read_archive
from tests.marketplace.cli_runner import run_cli

PKG = "alice/word-count"
TEMPLATE = "templates/word-count.json"


def package(tmp: Path, *, tools: list[str] = (), permissions: list[str] = (),  # type: ignore[assignment]
            capabilities: list[str] = ("count",), model: dict[str, Any] | None = None,  # type: ignore[assignment]
            examples: bool = True, code: bool = True, version: str = "1.0.0") -> Any:
    folder = tmp / f"pkg-{version}-{len(list(tmp.iterdir()))}"
    (folder / "templates").mkdir(parents=True)
    template: dict[str, Any] = {"name": PKG, "version": version, "tools": list(tools),
                                "capabilities": list(capabilities)}
    if model is not None:
        template["model"] = model
    if not code:
        template["workflow"] = {"steps": [{"name": "a", "agent": "analyst"}]}
    manifest: dict[str, Any] = {"name": PKG, "version": version, "summary": "s", "license": "MIT",
                                "templates": [TEMPLATE], "permissions": list(permissions)}
    if examples and code:
        manifest["examples"] = [{"name": "e", "input": {}, "expected": {}}]
    (folder / "agent.json").write_text(json.dumps(manifest))
    (folder / TEMPLATE).write_text(json.dumps(template))
    if code:
        (folder / "process.py").write_text("def process(task):\n    return {}\n")
    (folder / "README.md").write_text("# x\n")
    return read_archive(build_archive(folder))


def lines(old: Asks, new: Asks) -> list[str]:
    return diff(old, new).lines()


def test_asks_read_tools_models_needs_and_tier(tmp_path: Path) -> None:
    asks = asks_of(package(tmp_path, tools=["calendar_lookup", "shell:ls"],
                           permissions=["network:api.example.com"],
                           model={"name": "smart"}), "k1")
    assert asks.tools == {"calendar_lookup", "shell:ls"}
    assert asks.permissions == {"network:api.example.com"}
    assert asks.models == {"smart"}
    assert asks.needs == {"network", "commands"}
    assert asks.tier == "vetted"
    assert asks_of(package(tmp_path, examples=False)).tier == "unvetted"
    assert asks_of(package(tmp_path, model={"provider": "openai", "name": "gpt-4o"})).models == {
        "openai:gpt-4o"}
    assert asks_of(package(tmp_path)).models == frozenset()  # local/deterministic is no model
    assert needs_of(["file_write", "regex_search"]) == {"filesystem"}


def test_diff_shows_what_is_added_and_needs_consent_only_for_more(tmp_path: Path) -> None:
    old = asks_of(package(tmp_path, tools=["a"], capabilities=["count"]), "k1")
    more = asks_of(package(tmp_path, tools=["a", "http_fetch"], capabilities=["count"],
                           model={"name": "smart"}, examples=False), "k1")
    assert lines(old, more) == ["+ tool: http_fetch", "+ model: smart", "+ needs: network",
                                "sandbox tier: vetted → unvetted"]
    assert diff(old, more).needs_consent
    less = asks_of(package(tmp_path, tools=[], capabilities=["count"]), "k1")
    assert not diff(old, less).needs_consent
    assert lines(old, less) == ["- tool: a"]
    assert diff(old, old) == diff(old, asks_of(package(tmp_path, tools=["a"]), "k1"))
    assert not diff(old, old).lines()


def test_a_new_key_needs_consent_and_says_whether_it_is_a_rotation() -> None:
    old = Asks(key_id="a" * 32)
    rotated = Asks(key_id="b" * 32, rotated_from=("a" * 32,))
    assert diff(old, rotated).lines() == [
        "key: aaaaaaaaaaaa… → bbbbbbbbbbbb… (rotated from aaaaaaaaaaaa…, each step signed by "
        "the key before)"]
    assert "not a rotation" in diff(old, Asks(key_id="c" * 32)).lines()[0]


def test_less_confined_tier_is_more(tmp_path: Path) -> None:
    workflow = asks_of(package(tmp_path, code=False))
    code = asks_of(package(tmp_path))
    assert workflow.tier == "no-code"
    assert diff(workflow, code).lines() == ["sandbox tier: no-code → vetted"]
    assert not diff(code, workflow).needs_consent


# -- end to end ---------------------------------------------------------------------------------

def user(tmp: Path, who: str, url: str) -> dict[str, str]:
    home = tmp / who
    home.mkdir(exist_ok=True)
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url, "AGENTFACTORY_TOKEN": ""}


def edit(folder: Path, version: str, **template: Any) -> None:
    """Set `version` and the template's fields; `permissions` goes to the manifest."""
    set_version(folder, version)
    permissions = template.pop("permissions", None)
    path = folder / TEMPLATE
    doc = json.loads(path.read_text())
    doc.update(template)
    for key in [k for k, v in doc.items() if v is None]:
        del doc[key]
    path.write_text(json.dumps(doc))
    if permissions is not None:
        manifest = json.loads((folder / "agent.json").read_text())
        manifest["permissions"] = permissions
        (folder / "agent.json").write_text(json.dumps(manifest))


@pytest.mark.e2e
@pytest.mark.sandbox
def test_upgrade_asking_for_more_is_refused_then_accepted(live_server: Any,
                                                           tmp_path: Path) -> None:
    alice, bob = user(tmp_path, "alice", live_server), user(tmp_path, "bob", live_server)
    run_cli(alice, "keygen").ok()
    run_cli(alice, "register", "alice").ok()
    pkg = tmp_path / "word-count"
    run_cli(alice, "init", str(pkg), "--name", PKG).ok()
    run_cli(alice, "publish", str(pkg)).ok()
    run_cli(bob, "install", PKG).ok()
    home = Path(bob["AGENTFACTORY_HOME"])

    edit(pkg, "1.1.0", tools=["calendar_lookup"], model={"name": "smart"},
         permissions=["network:api.example.com"])
    run_cli(alice, "publish", str(pkg)).ok()
    refused = run_cli(bob, "install", PKG)
    assert refused.code == 1 and "Traceback" not in refused.err
    shown = [line.strip() for line in refused.err.strip().splitlines()]
    assert shown[:5] == [f"{PKG} 1.0.0 → 1.1.0 asks for more:", "+ tool: calendar_lookup",
                         "+ permission: network:api.example.com", "+ model: smart",
                         "+ needs: network"]
    assert shown[-1].startswith(f"error: {PKG} 1.0.0 → 1.1.0 asks for more (+ tool: "
                                "calendar_lookup") and "--accept" in shown[-1]
    assert read_lock(home).agents[PKG].version == "1.0.0"  # nothing installed

    accepted = run_cli(bob, "install", PKG, "--accept").ok()
    assert "+ tool: calendar_lookup" in accepted.err
    assert f"installed {PKG} 1.1.0" in accepted.out
    assert read_lock(home).agents[PKG].version == "1.1.0"

    # Less (no model, no network permission): `update` moves silently.
    edit(pkg, "1.2.0", model=None, permissions=[])
    run_cli(alice, "publish", str(pkg)).ok()
    assert run_cli(bob, "outdated", "--json").ok().json() == [{
        "name": PKG, "installed": "1.1.0", "latest": "1.2.0", "adds": [],
        "drops": ["- permission: network:api.example.com", "- model: smart", "- needs: network"],
        "error": None}]
    updated = run_cli(bob, "update").ok()
    assert updated.out.strip() == f"updated {PKG} 1.1.0 → 1.2.0"
    assert "asks for more" not in updated.err
    assert run_cli(bob, "outdated").ok().out.strip() == "every installed agent is up to date"

    # outdated says what the next one would add; update without --accept refuses it.
    edit(pkg, "1.3.0", capabilities=["text-statistics", "translation"])
    run_cli(alice, "publish", str(pkg)).ok()
    table = run_cli(bob, "outdated").ok().out
    assert PKG in table and "1.2.0" in table and "1.3.0" in table
    assert "+ capability: translation" in table
    assert run_cli(bob, "update").code == 1
    assert read_lock(home).agents[PKG].version == "1.2.0"
    assert "1.2.0 → 1.3.0" in run_cli(bob, "update", PKG, "--accept").ok().out
