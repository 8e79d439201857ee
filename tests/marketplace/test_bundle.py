"""Signed offline bundles, through a real `agentfactory serve` and the CLI.

A bundle made from a live server installs on a machine with no network: every HTTP request is
refused by a transport that records it, and none is made. Hostile bundles — truncated, a member
changed, a path climbing out, a name twice, an oversized member, a release whose signature is
not its publisher's, a forged log proof, a revoked release inside, another bundler than the one
pinned — are each refused with a message naming the member, and nothing is installed.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.client.bundle import Bundle, read_bundle, write_bundle
from marketplace.client.lockfile import read_lock
from registry.signing import SigningKey
from tests.marketplace.cli_runner import Run, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]
MAIN, HELPER = "alice/main", "alice/helper"
UNREACHABLE = "http://127.0.0.1:9"


def user(tmp: Path, who: str, url: str) -> dict[str, str]:
    home = tmp / who
    home.mkdir(exist_ok=True)
    return {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": url, "AGENTFACTORY_TOKEN": ""}


def publish(env: dict[str, str], tmp: Path, name: str, requires: dict[str, str] | None = None
            ) -> None:
    folder = tmp / name.replace("/", "-")
    run_cli(env, "init", str(folder), "--name", name).ok()
    if requires:
        manifest = json.loads((folder / "agent.json").read_text())
        (folder / "agent.json").write_text(json.dumps({**manifest, "requires": requires}))
    run_cli(env, "publish", str(folder)).ok()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every real HTTP request fails and is recorded (the offline machine)."""
    sent: list[str] = []

    def refuse(self: Any, request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url}")
        raise httpx.ConnectError("the network is off")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    yield sent


@pytest.fixture
def made(live_server: Any, tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """A bundle of alice/main (which requires alice/helper) made by bob; and alice's env."""
    alice, bob = user(tmp_path, "alice", live_server), user(tmp_path, "bob", live_server)
    run_cli(alice, "keygen").ok()
    run_cli(alice, "register", "alice").ok()
    publish(alice, tmp_path, HELPER)
    publish(alice, tmp_path, MAIN, {HELPER: ">=1.0"})
    run_cli(bob, "keygen").ok()
    target = tmp_path / "agents.bundle"
    created = run_cli(bob, "bundle", "create", MAIN, "-o", str(target)).ok()
    assert "2 releases" in created.out and f"{HELPER} 1.0.0" in created.out
    signer = created.out.split("signed by key ")[1].split()[0]
    return target, alice, signer


def offline(tmp: Path, who: str) -> dict[str, str]:
    return user(tmp, who, UNREACHABLE)


def test_a_bundle_installs_with_the_network_off(
    made: tuple[Path, dict[str, str], str], tmp_path: Path, no_network: list[str]
) -> None:
    target, _alice, signer = made
    shown = run_cli(offline(tmp_path, "viewer"), "bundle", "show", str(target), "--json").ok()
    summary = shown.json()
    assert summary["signer"] == signer and summary["log"] and summary["revocations"]
    assert [(r["name"], r["requested"], r["log_proof"]) for r in summary["releases"]] == [
        (HELPER, False, True), (MAIN, True, True)]

    made_once = read_bundle(target.read_bytes())
    key = SigningKey.generate()
    twice = [write_bundle(made_once.index.registry, made_once.index.releases, made_once.members,
                          key) for _ in range(2)]
    assert twice[0] == twice[1]  # deterministic: the same contents give the same bytes

    dave = offline(tmp_path, "dave")
    done = run_cli(dave, "install", "--from-bundle", str(target), "--bundle-signer", signer).ok()
    assert f"installed {HELPER} 1.0.0" in done.out and f"installed {MAIN} 1.0.0" in done.out
    assert no_network == []  # not one request left the machine
    lock = read_lock(Path(dave["AGENTFACTORY_HOME"])).agents
    assert sorted(lock) == [HELPER, MAIN] and lock[MAIN].vetting.status == "passed"
    assert not lock[HELPER].requested
    state = json.loads((Path(dave["AGENTFACTORY_HOME"]) / "log.json").read_text())
    assert f"{MAIN}@1" in json.dumps(state)  # the release's log leaf is remembered
    source = tmp_path / "task.json"
    source.write_text(json.dumps({"text": "a b b"}))
    assert run_cli(dave, "run", MAIN, "--input", str(source)).ok().json()["words"] == 3
    again = run_cli(dave, "install", "--from-bundle", str(target)).ok()
    assert f"already installed {MAIN} 1.0.0" in again.out
    assert no_network == []


def repack(bundle: Bundle, *, members: dict[str, bytes] | None = None,
           releases: list[Any] | None = None) -> bytes:
    """What a hostile bundler can do: change anything, then sign with its own key."""
    return write_bundle(bundle.index.registry, releases or bundle.index.releases,
                        {**bundle.members, **(members or {})}, SigningKey.generate())


def raw_zip(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            archive.writestr(zipfile.ZipInfo(name), data)
    return out.getvalue()


def refused(tmp: Path, who: str, data: bytes, *extra: str) -> Run:
    path = tmp / f"{who}.bundle"
    path.write_bytes(data)
    env = offline(tmp, who)
    result = run_cli(env, "install", "--from-bundle", str(path), *extra)
    assert result.code == 1 and "Traceback" not in result.err, result.err
    error = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, result.err
    assert not (Path(env["AGENTFACTORY_HOME"]) / "agentfactory.lock").exists()
    assert not (Path(env["AGENTFACTORY_HOME"]) / "agents").exists()
    return Run(result.code, result.out, error[0])


def test_hostile_bundles_are_refused_and_nothing_is_installed(
    made: tuple[Path, dict[str, str], str], live_server: Any, tmp_path: Path,
    no_network: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, alice, signer = made
    good = target.read_bytes()
    bundle = read_bundle(good)
    main = next(r for r in bundle.index.releases if r.name == MAIN)
    helper = next(r for r in bundle.index.releases if r.name == HELPER)
    zipped = zipfile.ZipFile(io.BytesIO(good))
    entries = [(i.filename, zipped.read(i)) for i in zipped.infolist()]

    assert "is not a whole zip archive (truncated" in refused(
        tmp_path, "cut", good[: len(good) // 2]).err
    changed = [(n, d + b"\0" if n == main.archive else d) for n, d in entries]
    assert f"'{main.archive}' does not match its sha256 in bundle.json" in refused(
        tmp_path, "tampered", raw_zip(changed)).err
    assert "'../../escape' is not a plain relative path" in refused(
        tmp_path, "traversal", raw_zip([*entries, ("../../escape", b"x")])).err
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = raw_zip([*entries, (main.archive, b"other")])
    assert f"'{main.archive}' appears twice" in refused(tmp_path, "twice", twice).err
    huge = raw_zip([*entries, ("reviews/huge.json", b"0" * (10 * 1024 * 1024 + 1))])
    assert "'reviews/huge.json' is 10485761 bytes, over the 10485760-byte limit" in refused(
        tmp_path, "huge", huge).err

    # Re-signed by a hostile bundler: the publishers' signatures and the log still decide.
    swapped = [main.model_copy(update={"signature": helper.signature}), helper]
    error = refused(tmp_path, "forged", repack(bundle, releases=swapped)).err
    assert f"'{main.archive}'" in error and "signature" in error
    proof = json.loads(bundle.members[main.inclusion])
    proof["entry"]["index"] = 1 - proof["entry"]["index"]
    error = refused(tmp_path, "proof", repack(
        bundle, members={main.inclusion: json.dumps(proof).encode()})).err
    assert f"'{main.inclusion}'" in error
    assert "is signed by key" in refused(tmp_path, "pinned", repack(bundle),
                                         "--bundle-signer", signer).err

    # A revoked release inside a bundle (with the list that revokes it) is refused by name.
    monkeypatch.undo()  # alice is online
    run_cli(alice, "revoke", MAIN, "1.0.0", "--reason", "key stolen").ok()
    listing = httpx.get(f"{live_server}/api/v1/revocations").content
    revoked = repack(bundle, members={"revocations.json": listing})
    error = refused(tmp_path, "revoked", revoked).err
    assert error == f"error: {MAIN} 1.0.0 is revoked: key stolen; it must not run"
