"""End to end: a real uvicorn server on 127.0.0.1, driven through the `agentfactory` CLI.

Publisher alice and user bob each have their own `AGENTFACTORY_HOME`; installs are vetted in the
real Wasmtime sandbox. Refusals are checked for a one-line error, a non-zero exit and an
unchanged store (server side: the versions and reviews; client side: the home directory).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.client.errors import DigestMismatch
from marketplace.client.http import MarketplaceClient
from marketplace.client.installer import Installer, sandbox_vetter
from marketplace.client.scaffold import set_version
from tests.marketplace.cli_runner import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
PKG = "alice/word-count"


def user(tmp: Path, who: str, url: str, **extra: str) -> dict[str, str]:
    home = tmp / who
    home.mkdir()
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url,
            "AGENTFACTORY_TOKEN": "", **extra}


def files_of(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and p.name != ".install.lock"}


def publish_scaffold(env: dict[str, str], directory: Path, name: str = PKG) -> None:
    run_cli(env, "init", str(directory), "--name", name).ok()
    run_cli(env, "publish", str(directory)).ok()


def test_publish_install_run_review_upgrade_yank(live_server: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, carol = (user(tmp_path, who, live_server) for who in ("alice", "bob", "carol"))
    key = run_cli(alice, "keygen", "--json").ok().json()
    reg = run_cli(alice, "register", "alice", "--namespace", "alice", "--json").ok().json()
    assert reg["key_id"] == key["key_id"]
    config = Path(alice["AGENTFACTORY_HOME"]) / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600
    pkg = tmp_path / "word-count"
    run_cli(alice, "init", str(pkg), "--name", PKG).ok()
    built = run_cli(alice, "build", str(pkg), "--json").ok().json()
    assert Path(built["path"]).is_file() and len(built["digest"]) == 64
    published = run_cli(alice, "publish", str(pkg), "--json").ok().json()
    assert published["digest"] == built["digest"]

    found = run_cli(bob, "search", "word", "--json").ok().json()
    assert PKG in [item["name"] for item in found["items"]]

    # A factory living in bob's process before the install sees the agent after it.
    monkeypatch.setenv("AGENTFACTORY_HOME", bob["AGENTFACTORY_HOME"])
    from core.factory import AgentFactory
    from marketplace.client.installed import refresh_factory

    factory = AgentFactory()
    refresh_factory(factory)
    assert "alice/word-count" not in factory.templates.names()
    run_cli(bob, "register", "bob").ok()  # signed in, so his download verifies his review
    installed = run_cli(bob, "install", PKG, "--json").ok().json()["installed"]
    assert [(e["name"], e["version"]) for e in installed] == [(PKG, "1.0.0")]
    assert installed[0]["vetting"]["status"] == "passed"
    assert installed[0]["digest"] == built["digest"]
    assert refresh_factory(factory)
    agent = factory.create_agent(PKG)
    assert agent.process({"text": "b a b"})["top_words"][0] == {"word": "b", "count": 2}
    factory.close()

    task = tmp_path / "task.json"
    task.write_text(json.dumps({"text": "one two two", "top": 1}))
    result = run_cli(bob, "run", PKG, "--input", str(task)).ok().json()
    assert result["words"] == 3 and result["top_words"] == [{"word": "two", "count": 2}]

    run_cli(bob, "rate", PKG, "4", "--review", "counts well", "--title", "solid").ok()
    info = run_cli(bob, "info", PKG, "--json").ok().json()
    assert info["package"]["rating"]["count"] == 1 and info["package"]["rating"]["mean"] == 4.0
    assert "(1 verified rating, all versions)" in run_cli(bob, "info", PKG).ok().out
    reviews = run_cli(carol, "reviews", PKG, "--json").ok().json()
    assert [(r["stars"], r["body"]) for r in reviews["items"]] == [(4, "counts well")]

    set_version(pkg, "1.1.0")
    run_cli(alice, "publish", str(pkg)).ok()
    upgraded = run_cli(bob, "install", PKG, "--json").ok().json()["installed"]
    assert [e["version"] for e in upgraded] == ["1.1.0"]
    assert [e["version"] for e in run_cli(bob, "list", "--json").ok().json()] == ["1.1.0"]
    listed = run_cli(bob, "list").ok().out.splitlines()
    assert listed[0].split() == ["NAME", "VERSION", "SHA256", "KEY", "VETTING", "STATUS"]
    assert listed[2].startswith(f"{PKG}  ") and "vetted (2 examples)" in listed[2]

    run_cli(alice, "yank", PKG, "1.1.0", "--reason", "miscounts hyphens").ok()
    assert "YANKED: miscounts hyphens" in run_cli(carol, "info", PKG).ok().out
    fresh = run_cli(carol, "install", PKG, "--json").ok().json()["installed"]
    assert [e["version"] for e in fresh] == ["1.0.0"]

    # The lockfile reinstalls the same bytes elsewhere; uninstall leaves nothing behind.
    dave = user(tmp_path, "dave", live_server)
    shutil.copy(Path(carol["AGENTFACTORY_HOME"]) / "agentfactory.lock",
                Path(dave["AGENTFACTORY_HOME"]) / "agentfactory.lock")
    locked = run_cli(dave, "install", "--locked", "--json").ok().json()["installed"]
    assert [e["digest"] for e in locked] == [built["digest"]]
    agent_files = Path("agents") / "alice" / "word-count"
    assert files_of(Path(dave["AGENTFACTORY_HOME"]) / agent_files) == files_of(
        Path(carol["AGENTFACTORY_HOME"]) / agent_files)
    run_cli(carol, "uninstall", PKG).ok()
    assert not (Path(carol["AGENTFACTORY_HOME"]) / "agents" / "alice").exists()
    assert run_cli(carol, "list", "--json").ok().json() == []


def test_refusals_are_one_clear_line_and_change_nothing(
        live_server_factory: Any, tmp_path: Path) -> None:
    server = live_server_factory(AGENTFACTORY_MAX_UPLOAD_BYTES="8192")
    alice, bob = user(tmp_path, "alice", server), user(tmp_path, "bob", server)
    run_cli(alice, "keygen").ok()
    run_cli(alice, "register", "alice").ok()
    run_cli(bob, "keygen").ok()
    run_cli(bob, "register", "bob").ok()
    publish_scaffold(alice, tmp_path / "pkg")
    api = httpx.Client(base_url=f"{server}/api/v1")

    def store() -> tuple[Any, Any]:
        versions = api.get(f"/packages/{PKG}/versions").json()
        return [v["version"] for v in versions], api.get(f"/packages/{PKG}/reviews").json()["total"]

    before = store()
    second = tmp_path / "pkg"
    set_version(second, "2.0.0")

    bad = run_cli({**alice, "AGENTFACTORY_TOKEN": "not-a-token"}, "publish", str(second)).failed()
    assert "authentication" in bad.err and "401" in bad.err
    missing = user(tmp_path, "nobody", server)
    shutil.copy(Path(alice["AGENTFACTORY_HOME"]) / "signing.key",
                Path(missing["AGENTFACTORY_HOME"]) / "signing.key")
    assert "needs an API token" in run_cli(missing, "publish", str(second)).failed().err
    unauthenticated = api.post("/packages", files={"archive": ("a.zip", b"PK", "application/zip")})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"].startswith("application/problem+json")

    theirs = run_cli(bob, "publish", str(second)).failed()  # alice/... from bob's token
    assert "403" in theirs.err

    token = json.loads((Path(alice["AGENTFACTORY_HOME"]) / "config.json").read_text())["token"]
    archive = Path(run_cli(alice, "build", str(second), "--json").ok().json()["path"]).read_bytes()
    unsigned = api.post("/packages", headers={"Authorization": f"Bearer {token}"},
                        files={"archive": ("a.zip", archive, "application/zip")})
    assert unsigned.status_code in (400, 422) and unsigned.json()["detail"]

    big = tmp_path / "big"
    run_cli(alice, "init", str(big), "--name", "alice/big").ok()
    (big / "README.md").write_text(os.urandom(16_000).hex())  # incompressible text
    oversized = run_cli(alice, "publish", str(big)).failed()
    assert "413" in oversized.err

    for stars in ("0", "6"):  # refused by the CLI before anything is sent
        assert "stars must be 1 to 5" in run_cli(bob, "rate", PKG, stars).failed().err
    long_title = run_cli(bob, "rate", PKG, "5", "--title", "t" * 300).failed()  # by the server
    assert long_title.err.startswith("error: title: ") and "(HTTP 422)" in long_title.err
    assert store() == before
    assert api.get("/packages/alice/big").status_code == 404

    # Bytes altered in transit (a man in the middle) are caught by the client's digest check.
    home_before = files_of(Path(bob["AGENTFACTORY_HOME"]))
    upstream = httpx.HTTPTransport()

    def tamper(request: httpx.Request) -> httpx.Response:
        response = upstream.handle_request(request)
        body = response.read()
        if request.url.path.endswith("/download"):
            body = body[:-8] + b"tampered"
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    mitm = MarketplaceClient(str(server), transport=httpx.MockTransport(tamper))
    installer = Installer(mitm, Path(bob["AGENTFACTORY_HOME"]), vetter=sandbox_vetter())
    with pytest.raises(DigestMismatch, match="corrupt or tampered"):
        installer.install(PKG)
    # A blob altered on the server's own disk: the server refuses to serve it.
    digest = api.get(f"/packages/{PKG}/versions").json()[0]["digest"]
    blob = next(p for p in Path(server.home).rglob(digest) if p.is_file())
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    assert "corrupt" in run_cli(bob, "install", PKG).failed().err
    assert files_of(Path(bob["AGENTFACTORY_HOME"])) == home_before


def test_console_script_help_and_errors(tmp_path: Path) -> None:
    """The installed `agentfactory` script: help lists the commands; errors are one line."""
    script = Path(sys.executable).with_name("agentfactory")
    env = {**os.environ, "AGENTFACTORY_HOME": str(tmp_path),
           "AGENTFACTORY_URL": "http://127.0.0.1:9"}  # nothing listens on the discard port
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env,
                           check=True)
    for command in ("install", "publish", "rate", "yank", "keygen"):
        assert command in shown.stdout
    down = subprocess.run([str(script), "search", "x"], capture_output=True, text=True, env=env)
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot reach the marketplace at http://127.0.0.1:9")
    assert len(down.stderr.strip().splitlines()) == 1


def test_a_rotated_key_is_accepted_only_through_its_signed_statement(
    live_server: Any, tmp_path: Path
) -> None:
    alice, bob = (user(tmp_path, who, live_server) for who in ("alice", "bob"))
    first = run_cli(alice, "keygen", "--json").ok().json()["key_id"]
    run_cli(alice, "register", "alice", "--namespace", "alice").ok()
    pkg = tmp_path / "word-count"
    publish_scaffold(alice, pkg)
    run_cli(bob, "install", PKG).ok()  # bob pins alice's first key

    rotated = run_cli(alice, "keygen", "--rotate", "--json").ok().json()
    assert rotated["rotated_from"] == first and rotated["key_id"] != first
    set_version(pkg, "1.1.0")
    run_cli(alice, "publish", str(pkg)).ok()
    # The new key is shown and needs consent (trust.md, upgrades that ask for more).
    assert "(rotated from" in run_cli(bob, "install", PKG).err
    upgraded = run_cli(bob, "install", PKG, "--accept", "--json").ok().json()["installed"]
    assert [(e["version"], e["key_id"]) for e in upgraded] == [("1.1.0", rotated["key_id"])]

    # A replacement key without a statement by a current key is refused by the registry.
    run_cli(alice, "keygen", "--force").ok()
    set_version(pkg, "1.2.0")
    refused = run_cli(alice, "publish", str(pkg)).failed()
    assert "needs a rotation statement signed by a current key" in refused.err
    versions = run_cli(bob, "info", PKG, "--json").ok().json()["versions"]
    assert "1.2.0" not in [v["version"] for v in versions]
