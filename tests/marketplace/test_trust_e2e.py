"""Trust end to end, through a real `agentfactory serve` and the CLI: graded retirement reaching
installed agents (warnings, refusals, a running server unloading a revoked agent), admin
revocation, a forged revocation list, verified reviews in `info`, `whoami` and `logout`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.client.scaffold import set_version
from registry.schemas import Principal
from registry.service import Registry
from tests.marketplace.cli_runner import Run, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
PKG = "alice/word-count"


def user(tmp: Path, who: str, url: str, home: Path | None = None) -> dict[str, str]:
    home = home or tmp / who
    home.mkdir(exist_ok=True)
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url, "AGENTFACTORY_TOKEN": ""}


def token_of(env: dict[str, str]) -> str:
    config = json.loads((Path(env["AGENTFACTORY_HOME"]) / "config.json").read_text())
    return str(config["token"])


def until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """A bounded poll (the server's file watch is asynchronous); never a fixed sleep."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def warned(result: Run) -> list[str]:
    return [line for line in result.err.splitlines() if line.strip()]


def test_deprecate_yank_revoke_reach_clients_and_the_running_server(
    live_server: Any, tmp_path: Path
) -> None:
    alice, bob, mallory = (user(tmp_path, who, live_server) for who in ("alice", "bob", "mallory"))
    for env, name in ((alice, "alice"), (bob, "bob"), (mallory, "mallory")):
        run_cli(env, "keygen").ok()
        run_cli(env, "register", name).ok()
    pkg = tmp_path / "word-count"
    run_cli(alice, "init", str(pkg), "--name", PKG).ok()
    run_cli(alice, "publish", str(pkg)).ok()
    run_cli(bob, "install", PKG).ok()
    # The server itself installs the agent too: its factory offers it to runs.
    server = user(tmp_path, "server", live_server, Path(live_server.home))
    run_cli({**server, "AGENTFACTORY_TOKEN": token_of(bob)}, "install", PKG).ok()
    set_version(pkg, "1.1.0")
    run_cli(alice, "publish", str(pkg)).ok()
    api = httpx.Client(base_url=f"{live_server}/api/v1",
                       headers={"Authorization": f"Bearer {token_of(bob)}"})
    task = {"agent": PKG, "input": {"text": "a b b"}}
    assert until(lambda: api.post("/runs", json=task).status_code == 202)

    # Deprecated, then yanked: bob's installed 1.0.0 still lists and runs, with one warning.
    run_cli(alice, "deprecate", PKG, "1.0.0", "--reason", "counts slowly").ok()
    listed = run_cli(bob, "list").ok()
    assert warned(listed) == [f"{PKG} 1.0.0 is deprecated: counts slowly; run "
                              f"`agentfactory install {PKG}` to move to 1.1.0"]
    assert "deprecated" in listed.out
    run_cli(alice, "yank", PKG, "1.0.0", "--reason", "miscounts hyphens").ok()
    assert warned(run_cli(bob, "list").ok()) == [
        f"{PKG} 1.0.0 is yanked: miscounts hyphens; run `agentfactory install {PKG}` to move "
        "to 1.1.0"]
    source = tmp_path / "task.json"
    source.write_text(json.dumps({"text": "one two two"}))
    ran = run_cli(bob, "run", PKG, "--input", str(source)).ok()
    assert ran.json()["words"] == 3 and "is yanked: miscounts hyphens" in ran.err
    locked = run_cli(bob, "install", "--locked").ok()
    assert "is yanked: miscounts hyphens" in locked.err

    # Only the owner revokes; the statement is signed with the owner's local key.
    refused = run_cli(mallory, "revoke", PKG, "1.0.0", "--reason", "mine now").failed()
    assert "belongs to another publisher" in refused.err
    done = run_cli(alice, "revoke", PKG, "1.0.0", "--reason", "signing key stolen").ok()
    assert "statement signed by your key" in done.out

    # The running server unloaded it at once: a run of it is refused, with the reason.
    gone = api.post("/runs", json=task)
    assert gone.status_code == 404 and gone.json()["code"] == "ReleaseRevoked"
    assert "signing key stolen" in gone.json()["detail"]
    assert api.post("/runs", json={"agent": "documentaliste", "input": {"text": "hi"}}
                    ).status_code == 202  # the built-ins are untouched

    # bob's client learns it from the signed list: list, run and install --locked refuse.
    revoked_line = f"{PKG} 1.0.0 is revoked: signing key stolen; it must not run"
    assert run_cli(bob, "list").failed().err.strip() == f"error: {revoked_line}"
    assert run_cli(bob, "run", PKG, "--input", str(source)).failed().err.strip() == (
        f"error: {revoked_line}")
    assert run_cli(bob, "install", "--locked").failed().err.strip() == f"error: {revoked_line}"
    assert "REVOKED: signing key stolen" in run_cli(bob, "info", PKG).ok().out

    # A forged cached list is refused, never believed.
    cache = Path(bob["AGENTFACTORY_HOME"]) / "revocations.json"
    raw = json.loads(cache.read_text())
    raw["payload"] = raw["payload"].replace("signing key stolen", "nothing to see")
    cache.write_text(json.dumps(raw))
    forged = run_cli(bob, "list", "--offline").failed()
    assert "signature does not verify" in forged.err


def test_admin_revokes_any_release_and_the_list_says_the_registry_signed(
    live_server: Any, tmp_path: Path
) -> None:
    alice, root = user(tmp_path, "alice", live_server), user(tmp_path, "root", live_server)
    run_cli(alice, "keygen").ok()
    run_cli(alice, "register", "alice").ok()
    run_cli(alice, "init", str(tmp_path / "pkg"), "--name", PKG).ok()
    run_cli(alice, "publish", str(tmp_path / "pkg")).ok()
    run_cli(root, "register", "root-operator").ok()
    with Registry.open(live_server.home) as registry:  # the operator, beside the server
        me = registry.authenticate(token_of(root))
        operator = Principal(me.publisher_id, me.name, me.namespaces, frozenset({"admin"}), "op")
        admin = registry.create_token(operator, {"admin"})
    plain = run_cli(root, "revoke", PKG, "1.0.0", "--reason", "malware", "--admin").failed()
    assert "belongs to another publisher" in plain.err  # --admin needs the admin scope
    done = run_cli(root, "revoke", PKG, "1.0.0", "--reason", "malware", "--admin",
                   "--token", admin).ok()
    assert "signed by the registry" in done.out
    listing = httpx.get(f"{live_server}/api/v1/revocations").json()
    [entry] = json.loads(listing["payload"])["entries"]
    assert (entry["level"], entry["signer"], entry["key_id"]) == (
        "revoked", "registry", listing["key_id"])


def test_reviews_count_when_verified_and_info_explains_the_rank(
    live_server: Any, tmp_path: Path
) -> None:
    alice, bob, eve = (user(tmp_path, who, live_server) for who in ("alice", "bob", "eve"))
    run_cli(alice, "keygen").ok()
    run_cli(alice, "register", "alice").ok()
    run_cli(alice, "init", str(tmp_path / "pkg"), "--name", PKG).ok()
    run_cli(alice, "publish", str(tmp_path / "pkg")).ok()
    run_cli(bob, "register", "bob").ok()
    run_cli(eve, "register", "eve").ok()
    run_cli(bob, "install", PKG).ok()  # with bob's token: his download is recorded
    run_cli(bob, "rate", PKG, "5", "--title", "great").ok()
    run_cli(eve, "rate", PKG, "1", "--title", "never installed").ok()
    out = run_cli(bob, "info", PKG).ok().out
    assert "(1 verified rating, all versions)" in out
    assert "rating 1.0.0" in out
    assert "1 review by people who did not download" in " ".join(out.split())
    text = " ".join(out.split())
    assert "5.0 from 1 rating; ranked as" in text and "as if they had 5 more ratings" in text
    reviews = run_cli(bob, "reviews", PKG).ok().out
    assert "bob on 1.0.0: great" in reviews
    assert "eve on 1.0.0 (unverified: not counted): never installed" in reviews


def test_whoami_and_logout(live_server: Any, tmp_path: Path) -> None:
    bob = user(tmp_path, "bob", live_server)
    run_cli(bob, "register", "bob").ok()
    token = token_of(bob)
    me = run_cli(bob, "whoami").ok().out
    assert me.startswith(f"bob at {live_server}") and "scopes: publish, review, run" in me
    out = run_cli(bob, "logout").ok().out
    assert out.startswith(f"logged out of {live_server}: token ") and "revoked and forgotten" in out
    config = json.loads((Path(bob["AGENTFACTORY_HOME"]) / "config.json").read_text())
    assert "token" not in config
    # The token is dead on the server too, and a second logout says there is nothing to do.
    refused = run_cli({**bob, "AGENTFACTORY_TOKEN": token}, "whoami").failed()
    assert "HTTP 401" in refused.err
    assert "logging out needs an API token" in run_cli(bob, "logout").failed().err
