"""Pinned template lineage, through a real `agentfactory serve` and the CLI.

carol's agent extends a template of alice's package. Installing it without alice's package is
refused; with it, the lockfile pins alice's template by its content hash, and the agent runs
with the inherited fields. When alice's package moves to a version whose template differs, the
install warns and carol's agent refuses to load, naming both hashes; `install --locked`
restores the pinned parent version, and another machine reproduces the same lineage from the
lockfile alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketplace.client.lockfile import read_lock
from marketplace.client.scaffold import set_version
from tests.marketplace.cli_runner import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
BASE, CHILD = "alice/base", "carol/child"


def user(tmp: Path, who: str, url: str) -> dict[str, str]:
    home = tmp / who
    home.mkdir(exist_ok=True)
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url, "AGENTFACTORY_TOKEN": ""}


def template_of(folder: Path) -> Path:
    return next((folder / "templates").glob("*.json"))


def rewrite(folder: Path, **fields: Any) -> None:
    path = template_of(folder)
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def publisher(tmp: Path, url: str, who: str, name: str) -> tuple[dict[str, str], Path]:
    env = user(tmp, who, url)
    run_cli(env, "keygen").ok()
    run_cli(env, "register", who).ok()
    folder = tmp / name.replace("/", "-")
    run_cli(env, "init", str(folder), "--name", name).ok()
    return env, folder


def test_a_cross_package_parent_is_pinned_by_hash(live_server: Any, tmp_path: Path) -> None:
    alice, base = publisher(tmp_path, live_server, "alice", BASE)
    rewrite(base, role="Count words for auditors.", capabilities=["audit"])
    run_cli(alice, "publish", str(base)).ok()
    carol, child = publisher(tmp_path, live_server, "carol", CHILD)
    doc = json.loads(template_of(child).read_text())
    del doc["role"]  # inherited from alice/base
    template_of(child).write_text(json.dumps({**doc, "extends": BASE}))
    run_cli(carol, "publish", str(child)).ok()
    bob = user(tmp_path, "bob", live_server)
    home = Path(bob["AGENTFACTORY_HOME"])

    missing = run_cli(bob, "install", CHILD).failed()
    assert f"template {CHILD} extends {BASE}, which neither a built-in" in missing.err
    assert CHILD not in read_lock(home).agents

    run_cli(bob, "install", BASE).ok()
    run_cli(bob, "install", CHILD).ok()
    [pin] = read_lock(home).agents[CHILD].lineage
    assert (pin.template, pin.parent, pin.package, pin.version) == (CHILD, BASE, BASE, "1.0.0")
    pinned = pin.hash
    source = tmp_path / "task.json"
    source.write_text(json.dumps({"text": "one two two"}))
    assert run_cli(bob, "run", CHILD, "--input", str(source)).ok().json()["words"] == 3

    # alice's template changes in 1.1.0: the upgrade says carol's agent is left behind...
    set_version(base, "1.1.0")
    rewrite(base, role="Count words for lawyers.")
    run_cli(alice, "publish", str(base)).ok()
    moved = run_cli(bob, "install", BASE).ok()
    assert f"warning: refusing to load {CHILD}" in moved.err
    # ... and loading it is refused, naming both hashes.
    refused = run_cli(bob, "run", CHILD, "--input", str(source)).failed()
    assert f"sha256:{pinned}" in refused.err and "but agentfactory.lock pinned" in refused.err
    now = refused.err.split("content hash is now sha256:")[1].split()[0]
    assert now != pinned and len(now) == 64

    # install --locked puts back the pinned parent version: the agent runs again.
    restored = run_cli(bob, "install", "--locked", CHILD).ok()
    assert f"installed {BASE} 1.0.0" in restored.out
    assert read_lock(home).agents[BASE].version == "1.0.0"
    assert run_cli(bob, "run", CHILD, "--input", str(source)).ok().json()["words"] == 3

    # Another machine, given only the lockfile, reproduces the exact lineage.
    dave = user(tmp_path, "dave", live_server)
    dave_home = Path(dave["AGENTFACTORY_HOME"])
    (dave_home / "agentfactory.lock").write_bytes((home / "agentfactory.lock").read_bytes())
    run_cli(dave, "install", "--locked").ok()
    theirs, ours = read_lock(dave_home).agents, read_lock(home).agents
    assert theirs[CHILD].lineage == ours[CHILD].lineage
    assert {k: e.digest for k, e in theirs.items()} == {k: e.digest for k, e in ours.items()}
    assert run_cli(dave, "run", CHILD, "--input", str(source)).ok().json()["words"] == 3

    # Installing carol's agent again re-pins to the parent now installed, once accepted.
    run_cli(bob, "install", BASE).ok()
    again = run_cli(bob, "install", CHILD)
    assert again.code == 1 and "asks for more" in again.err
    assert f"parent: {BASE} (of {CHILD}): sha256:{pinned[:12]}…" in again.err
    run_cli(bob, "install", CHILD, "--accept").ok()
    assert read_lock(home).agents[CHILD].lineage[0].version == "1.1.0"
    assert run_cli(bob, "run", CHILD, "--input", str(source)).ok().json()["words"] == 3
